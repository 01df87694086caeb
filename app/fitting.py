"""Edit a picture you bring (issue 26), the studio's side. File ▸ Open Image… (or a picture
dropped on the window) fits the open generator to the picture on the render worker's
thread (app/fit_worker.py: the GUI thread never runs the model) behind a progress dialog
(app/fit_dialog.py); the fitted scene then becomes one undoable edit, like any other, so
Ctrl+Z brings the scene before it back. A cancelled or failed fit changes nothing.

Also here: a saved session's fit file goes beside it (copy_fit_beside), and the pictures
fitted in this studio session are kept in memory by fit, for View ▸ Show Fitted Picture
(not in the session file: the picture is the user's file, the fit is what the scene needs).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from models.document.fileio import FileProblem, atomic_write_bytes, read_regular
from models.document.scene import SceneError

from . import settings
from .fit_dialog import FitProgress

TUNE_KEY = "fit/tune"
PICTURE_FOLDER_KEY = "fit/folder"


def is_picture(path: str | Path) -> bool:
    """A file Open Image reads, by its suffix (models/io/picture.SUFFIXES; torch-free)."""
    from models.io.picture import SUFFIXES

    return Path(path).suffix.lower() in SUFFIXES


def copy_fit_beside(sha256: str, session_path: str | Path, near: str | Path | None) -> str | None:
    """Put the fit file a scene names beside the session file being saved, so the session's
    folder holds all the scene needs: copied (atomically) from beside `near` (the session it
    was opened from) or from the fit store, unless it is there already. Returns what went
    wrong, or None."""
    from models.io.fit_file import MAX_FIT_BYTES, find_fit, fit_name, fit_store

    target = Path(session_path).parent / fit_name(sha256)
    try:  # is_file raises (not False) for EIO, ESTALE, EACCES: a share or stick gone away
        if target.is_file():
            return None  # named by its hash: the file there is this one (opening checks it)
        source = find_fit(sha256, near)
    except OSError as exc:
        return f"{exc.filename or target.parent}: cannot be read ({exc.strerror or exc})"
    if source is None:
        where = f"beside {near} or in {fit_store()}" if near else f"in {fit_store()}"
        return f"its fit file {fit_name(sha256)} is not {where}"
    try:
        data = read_regular(source, MAX_FIT_BYTES)
    except FileProblem as exc:
        return f"{source}: {exc.problem}"
    if hashlib.sha256(data).hexdigest() != sha256:
        return f"{source}: is not the fit file the scene names (changed or damaged)"
    try:
        atomic_write_bytes(target, data)
    except OSError as exc:
        return f"{target}: cannot write here ({exc.strerror or exc})"
    return None


def cannot_fit(info) -> str | None:
    """Why the open generator cannot be fitted to a picture, or None."""
    from models.fit import why_not_fittable

    first = "open a trained checkpoint first (File ▸ Open Checkpoint or Open Bundled Model)"
    if info is None:
        return f"no generator is open: {first}"
    problem = why_not_fittable(info.name, info.ref, info.config, info.trained)
    if problem is None or info.config.time is not None:
        return problem
    return f"{problem}: {first}"


class PictureFitter(QObject):
    """One fit at a time; `finished(path, outcome)` with outcome "fitted", "cancelled" or
    "failed"."""

    finished = Signal(str, str)

    def __init__(self, window, worker):
        super().__init__(window)
        self.window, self.worker = window, worker
        self.pictures: dict[str, np.ndarray] = {}  # fit SHA-256 -> the picture (the square crop fitted)
        self.options: dict = {}  # FitSettings fields over the defaults (tests shorten the fit)
        self.progress: FitProgress | None = None
        self._id = 0
        self._path: str | None = None  # the picture being fitted
        self._picture: np.ndarray | None = None
        self._generation = -1
        self._cancel = None
        self._waiting: str | None = None  # a picture to fit once the checkpoint being opened is open
        worker.fitPicture.connect(self._on_picture)
        worker.fitProgress.connect(self._on_step)
        worker.fitFinished.connect(self._on_finished)
        window.files.loadFinished.connect(self._on_load_finished)

    @property
    def running(self) -> bool:
        return self._path is not None

    @staticmethod
    def tune() -> bool:
        return settings.get(TUNE_KEY, False) in (True, "true")

    @staticmethod
    def set_tune(on: bool) -> None:
        settings.put(TUNE_KEY, bool(on))

    def ask(self) -> None:
        from models.io.picture import SUFFIXES

        patterns = " ".join(f"*{s}" for s in SUFFIXES)
        folder = settings.text(PICTURE_FOLDER_KEY) or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self.window, "Open image to fit", str(folder),
                                              f"Pictures ({patterns});;All files (*)")
        if path:
            settings.put(PICTURE_FOLDER_KEY, str(Path(path).parent))
            self.start(path)

    def start(self, path: str | Path) -> bool:
        """Fit the open generator to the picture at `path`. Nothing changes until the fit
        has succeeded; what stands in the way is said, naming the file."""
        path, window = str(path), self.window
        if self._path is not None:
            window.show_message(f"Already fitting {Path(self._path).name}: cancel it first")
            return False
        if window.document.info is None and window.files.loading:
            self._waiting = path  # a picture given at start-up: the checkpoint opens first
            return True
        problem = cannot_fit(window.document.info)
        if problem is not None:
            window.show_error(f"Cannot fit {Path(path).name}", f"{path}: {problem}")
            self.finished.emit(path, "failed")
            return False
        from models.fit.optimize import TUNE_STEPS, FitSettings  # (torch is loaded: a generator is open)

        window.playback.pause()
        self._id += 1
        self._path, self._picture, self._generation = path, None, window.files.generation
        tune = self.tune()
        options = {"tune_steps": TUNE_STEPS if tune else 0, **self.options}
        budget = FitSettings(**options)
        dialog = FitProgress(Path(path).name, tune, {"styles": budget.seconds, "tuning": budget.tune_seconds}, window)
        dialog.cancelRequested.connect(self.cancel)
        dialog.show()
        self.progress = dialog
        self._cancel = self.worker.fit_picture(self._id, path, options, self._generation)
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    @Slot(bool)
    def _on_load_finished(self, opened: bool) -> None:
        path, self._waiting = self._waiting, None
        if path is None:
            return
        if opened:
            self.start(path)
        elif self.window.files.loading:  # it failed and the default checkpoint is opening instead
            self._waiting = path
        else:
            self.window.show_message(f"{path}: not fitted, as no checkpoint could be opened")
            self.finished.emit(path, "failed")

    @Slot(int, object)
    def _on_picture(self, fit_id: int, picture) -> None:
        if fit_id == self._id and self.progress is not None:
            self._picture = picture
            self.progress.set_picture(picture)

    @Slot(int, str, int, int, float, object)
    def _on_step(self, fit_id: int, stage: str, step: int, total: int, psnr_db: float, image) -> None:
        if fit_id == self._id and self.progress is not None:
            self.progress.set_step(stage, step, total, psnr_db, image)

    @Slot(int, str, object, str)
    def _on_finished(self, fit_id: int, outcome: str, result, message: str) -> None:
        if fit_id != self._id or self._path is None:
            return
        path, picture, cancelled = self._path, self._picture, self._cancel.is_set()
        self._path = self._picture = self._cancel = None
        name, window = Path(path).name, self.window
        if self.progress is not None:
            self.progress.finish()
            self.progress.deleteLater()
            self.progress = None
            window.activateWindow()  # the keys (Ctrl+Z, P) go to the window again, whatever the platform
        if outcome == "cancelled" or (outcome == "fitted" and cancelled):
            window.show_message(f"Fitting {name} cancelled: the scene is as it was")
            self.finished.emit(path, "cancelled")
            return
        if outcome == "fitted" and window.files.generation != self._generation:
            outcome, message = "failed", f"{path}: another checkpoint was opened while it was fitted"
        if outcome == "fitted":
            if picture is not None:
                self.pictures[result.state.fit] = picture  # before the edit: the overlay asks for it
            try:
                window.document.replace_state(result.state, f"Fit {name}")
            except SceneError as exc:  # not expected: the fit made it for this generator
                outcome, message = "failed", f"{path}: {exc}"
        if outcome != "fitted":
            window.show_error(f"Cannot fit {name}", message)
            self.finished.emit(path, "failed")
            return
        window.show_message(f"Fitted {name}: PSNR {result.psnr:.1f} dB in {result.seconds:.0f} s."
                            " Drag its objects; Ctrl+Z brings the scene before it back")
        self.finished.emit(path, "fitted")
