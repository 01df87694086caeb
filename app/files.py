"""Opening checkpoints, sessions and pictures, saving sessions, exporting images, recent files.

Loading a checkpoint runs on the render worker's thread (it owns the model); the window
shows a busy indicator meanwhile and stays usable. A file that cannot be used leaves
everything as it was and says which file and what is wrong.

A scene fitted to a picture names a fit file (app/fitting.py): the worker looks for it
beside the open session first (worker.fit_near, set before the scene is shown), and
saving a session puts the fit file beside it.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from models.document.fileio import ExportError
from models.document.scene import SceneError, initial_state
from models.document.session import SessionError, load_session, resolve_checkpoint_path, save_session

from . import settings
from .export import ExportDialog, ExportOptions, export_image
from .fitting import copy_fit_beside, is_picture

CHECKPOINT_FILTER = "SteerGAN checkpoints (*.safetensors);;All files (*)"
SESSION_FILTER = "SteerGAN sessions (*.json)"
# After a crash, a restore that failed keeps the crashed scene (app/autosave.py): said so.
KEPT_FOR_NEXT_START = "\n\nThe autosaved scene is kept and offered again when the studio next starts."


class FileController(QObject):
    loadFinished = Signal(bool)  # a checkpoint load ended: True opened, False refused
    exportFinished = Signal(str, bool)  # path, written
    recentChanged = Signal(list)
    recoveredRestored = Signal()  # a crashed studio's autosaved scene is now the document's

    def __init__(self, window, document, worker, canvas):
        super().__init__(window)
        self.window, self.document, self.worker, self.canvas = window, document, worker, canvas
        self.session_path: str | None = None
        self.generation = -1  # the load token of the generator renders are made for
        self._token = 0
        self._loads: dict[int, dict] = {}  # token -> what to do when it is loaded
        self._pending_export: ExportOptions | None = None
        self._fit_warned: set[tuple[str, str]] = set()  # (fit, session) saved without its fit file
        worker.loaded.connect(self._on_loaded)
        worker.loadFailed.connect(self._on_load_failed)

    @property
    def loading(self) -> bool:
        return bool(self._loads)

    # ---- opening -----------------------------------------------------------------------
    def open_path(self, path: str | Path, fallback: bool = False) -> None:
        """A file from the command line, a drop, or the recent list: sessions are .json,
        pictures (PNG, JPEG, ...) are fitted, anything else is a checkpoint. `fallback` (the
        file given at start-up): if it cannot be opened, say why and open the default
        checkpoint, so the window is never left empty."""
        suffix = Path(path).suffix.lower()
        if suffix == ".json":
            self.open_session(path, fallback=fallback)
        elif is_picture(path):
            if fallback and self.document.info is None:
                self.open_checkpoint(None)  # a picture given at start-up: fitted once this is open
            self.window.fitter.start(path)
        else:
            self.open_checkpoint(path, fallback=fallback)

    def open_checkpoint(self, path: str | Path | None = None, arch: str | None = None, state=None,
                        session: str | None = None, recovered: bool = False, fallback: bool = False,
                        sha256: str | None = None) -> int:
        """Ask the worker to load; returns the load token. `state`: the scene to show once
        loaded (a session's), else a fresh scene of seed 0. `recovered`: the scene is an
        autosave brought back after a crash (unsaved, with no file of its own). `sha256`: the
        checkpoint's hash the session recorded (a different one is said once it is loaded)."""
        self._token += 1
        label = Path(path).name if path else (arch or "the default generator")
        self._loads[self._token] = {"path": None if path is None else str(path), "state": state,
                                    "session": session, "label": label, "recovered": recovered,
                                    "fallback": fallback, "sha256": sha256}
        self.window.set_busy(f"Opening {label}…")
        self.worker.load(self._token, None if path is None else str(path), arch)
        return self._token

    @Slot(int, object)
    def _on_loaded(self, token: int, info) -> None:

        job = self._finish(token)
        state = job.get("state")
        if state is not None:
            try:
                state.check_fits(info.config)
            except SceneError as exc:
                source = job.get("session") or job.get("label")
                kept = KEPT_FOR_NEXT_START if job.get("recovered") else ""
                self.window.show_error("Session does not fit the checkpoint",
                                       f"{source}: {exc}. Opened {info.name} with a new scene.{kept}")
                state = None
        self.generation = token  # before reset: the reset's render request carries it
        self.session_path = self.worker.fit_near = job.get("session")
        self.document.reset(info, state if state is not None else initial_state(info.config, 0))
        saved_sha = job.get("sha256")
        if state is not None and saved_sha is not None and info.ref.sha256 != saved_sha:
            # Retrained or replaced since (the relay ships new weights under the same name): the
            # scene opens, and the user is told why its picture may not be the one saved.
            source = job.get("session") or "The autosaved scene"
            self.window.show_error("Checkpoint changed since the session was saved",
                                   f"{source}: its checkpoint {info.path} has changed since the session was saved"
                                   f" (SHA-256 {(info.ref.sha256 or '?')[:12]}…, the session has {saved_sha[:12]}…),"
                                   " so the picture may differ. Saving records the checkpoint as it is now.")
        if job.get("recovered") and state is not None:
            self.document.undo_stack.resetClean()  # unsaved until the user saves it somewhere
            self.window.update_title()
            self.recoveredRestored.emit()
        for recent in (job.get("session"), job.get("path")):
            if recent:
                self.recentChanged.emit(settings.add_recent(recent))
                break
        self.window.show_message(f"Opened {info.name}" + ("" if info.trained else
                                 " — an untrained model: expect noise-like images"))
        self.loadFinished.emit(True)

    @Slot(int, str)
    def _on_load_failed(self, token: int, message: str) -> None:
        job = self._finish(token)
        fallback = job.get("fallback") and self.document.info is None
        if fallback:
            message += "\n\nOpened the default checkpoint instead."
        if job.get("recovered"):
            message += KEPT_FOR_NEXT_START
        self.window.show_error(f"Cannot open {job.get('label', 'the checkpoint')}", message)
        self.loadFinished.emit(False)
        if fallback:
            self.open_checkpoint(None)

    def _finish(self, token: int) -> dict:
        # Loads the worker coalesced away (a newer one replaced them) never answer: drop them.
        job = self._loads.pop(token, {})
        for older in [t for t in self._loads if t < token]:
            del self._loads[older]
        if not self._loads:
            self.window.set_busy(None)
        return job

    def open_session(self, path: str | Path, recovered: bool = False, fallback: bool = False) -> None:
        """Open a session file. `recovered`: it is the autosave of a crashed run; the scene
        comes back unsaved and Save asks where to put it (the autosave file is not the
        user's). `fallback`: as in open_path."""

        def refuse(message: str) -> None:
            if recovered:
                message += KEPT_FOR_NEXT_START
            if fallback and self.document.info is None:
                self.window.show_error("Cannot open session", message + "\n\nOpened the default checkpoint instead.")
                self.open_checkpoint(None)
            else:
                self.window.show_error("Cannot open session", message)

        try:
            state, ref = load_session(path)
        except SessionError as exc:
            refuse(str(exc))
            return
        info = self.document.info
        # While a load is on its way it will replace the generator open now: the session goes
        # through the load queue too (the newest load wins), not onto a scene about to go.
        if info is not None and not self.loading and _same_checkpoint(ref, info.ref, path):
            text = "Restore the autosaved scene" if recovered else f"Open session {Path(path).name}"
            self.worker.fit_near = str(path)  # before the render the new scene asks for
            try:
                self.document.replace_state(state, text)
            except SceneError as exc:
                refuse(f"{path}: {exc}")
                return
            if recovered:
                self.session_path = None
                self.document.undo_stack.resetClean()
                self.recoveredRestored.emit()
            else:
                # History starts over, as when opening a checkpoint: undoing past the open
                # would leave this file the save target of a scene it does not hold.
                self.document.undo_stack.clear()
                self.session_path = str(path)
                self.document.undo_stack.setClean()
                self.recentChanged.emit(settings.add_recent(path))
            self.window.update_title()
            return
        checkpoint = resolve_checkpoint_path(ref, path)
        if checkpoint is not None and not Path(checkpoint).exists():
            refuse(f"{path}: its checkpoint {checkpoint} does not exist (moved or deleted?)")
            return
        self.open_checkpoint(checkpoint, arch=None if checkpoint else ref.architecture, state=state,
                             session=None if recovered else str(path), recovered=recovered, fallback=fallback,
                             sha256=ref.sha256 if checkpoint else None)

    def open_recent(self, path: str) -> None:
        """An Open Recent entry. One whose file is gone (moved, deleted, a drive unplugged) is
        said and dropped from the list, before any question about unsaved edits (nothing would
        replace them); it had stayed in the menu for good."""
        if not Path(path).exists():
            settings.remove_recent(path)
            self.recentChanged.emit(settings.recent_files())
            self.window.show_error("Cannot open recent file",
                                   f"{path}: no longer exists (moved or deleted); removed from Open Recent")
            return
        self.user_open(path)

    def user_open(self, path: str | Path) -> None:
        """A file the user chose (a drop, a recent file, a bundled model): unsaved edits are
        saved or discarded first, as the user answers; Cancel leaves everything as it was.
        A picture replaces nothing (its fit is an undoable edit): no question."""
        suffix = Path(path).suffix.lower()
        if suffix not in (".json", ".safetensors") and is_picture(path):
            self.window.fitter.start(path)
        elif self.window.confirm_replace(Path(path).name):
            self.open_path(path)

    def ask_open_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open checkpoint", self._folder(), CHECKPOINT_FILTER)
        if path and self.window.confirm_replace(Path(path).name):
            self.open_checkpoint(path)

    def ask_open_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open session", self._folder(), SESSION_FILTER)
        if path and self.window.confirm_replace(Path(path).name):
            self.open_session(path)

    def _folder(self) -> str:
        recent = settings.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    # ---- saving ------------------------------------------------------------------------
    def save_session(self, path: str | Path | None = None) -> bool:

        path = path or self.session_path
        if path is None:
            return self.ask_save_session()
        state = self.document.state
        if state is None:
            return False
        try:
            # The fit file first: a session beside it never names a file that is not there.
            missing = None if state.fit is None else copy_fit_beside(state.fit, path, self.session_path)
            save_session(path, state, self.document.info.ref)
        except OSError as exc:
            self.window.show_error("Cannot save session", f"{path}: cannot write here ({exc.strerror or exc})")
            return False
        if missing is not None:  # saved all the same; asked once, then said in the status bar
            message = (f"Saved {path}, but the picture's fit could not go beside it: {missing}. Opened"
                       " elsewhere, the scene renders without the fitted picture.")
            if (state.fit, str(path)) in self._fit_warned:
                self.window.show_message(message)
            else:
                self._fit_warned.add((state.fit, str(path)))
                self.window.show_error("Session saved without its fit file", message)
        self.session_path = self.worker.fit_near = str(path)
        self.document.undo_stack.setClean()
        self.window.update_title()
        self.recentChanged.emit(settings.add_recent(path))
        self.window.show_message(f"Saved {path}")
        return True

    def ask_save_session(self) -> bool:
        start = self.session_path or str(Path(self._folder()) / "scene.json")
        path, _ = QFileDialog.getSaveFileName(self.window, "Save session", start, SESSION_FILTER)
        if path and not Path(path).suffix:
            path += ".json"  # (Linux dialogs add none) without it the file would open as a checkpoint
        return bool(path) and self.save_session(path)

    # ---- export ------------------------------------------------------------------------
    def ask_export(self) -> None:
        if self.document.state is None:
            return
        stem = Path(self.session_path).stem if self.session_path else "steergan"
        dialog = ExportDialog(self.document.config.resolution, stem, self.window)
        if dialog.exec() == ExportDialog.DialogCode.Accepted:
            self.export(dialog.options())

    def export(self, options: ExportOptions) -> None:
        """Export the current state's frame; if it is still being rendered, as soon as it
        arrives (exports are always of what the scene is now, never of an older frame)."""
        self._pending_export = options
        self.frame_shown()

    def frame_shown(self) -> None:
        options = self._pending_export
        frame = self.canvas.frame
        if options is None or frame is None or frame.preview or self.canvas.frame_state != self.document.state:
            return  # (a drag's preview is never exported: the full frame follows)

        self._pending_export = None
        try:
            export_image(options, self.canvas.frame.image, self.canvas.grab_image_area)
        except ExportError as exc:
            self.window.show_error("Cannot export", str(exc))
            self.exportFinished.emit(options.path, False)
            return
        self.window.show_message(f"Exported {options.path}")
        self.exportFinished.emit(options.path, True)


def _same_checkpoint(ref, loaded, session_path) -> bool:
    """Does a session's checkpoint reference name the generator already open?"""

    if ref.path is None or loaded.path is None:
        return ref.path is None and loaded.path is None and ref.architecture == loaded.architecture
    same_file = Path(resolve_checkpoint_path(ref, session_path)).resolve() == Path(loaded.path).resolve()
    return same_file and (ref.sha256 is None or ref.sha256 == loaded.sha256)
