"""Autosave: the scene is written (as a session) every few edits or seconds, so a crash
loses at most the last few edits. A marker file says "running"; a clean exit removes it,
so a marker found at start-up means the last run crashed and its autosave is worth
offering back.

The folder is QStandardPaths' AppDataLocation, or $STEERGAN_AUTOSAVE_DIR (tests)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer

from models.document.session import save_session

ENV_DIR = "STEERGAN_AUTOSAVE_DIR"
EVERY_EDITS = 5
AFTER_MS = 2000


def autosave_folder() -> Path:
    folder = os.environ.get(ENV_DIR) or QStandardPaths.writableLocation(
        QStandardPaths.StandardLocation.AppDataLocation)
    return Path(folder)


class Autosaver(QObject):
    def __init__(self, document, folder: str | Path | None = None, every_edits: int = EVERY_EDITS,
                 after_ms: int = AFTER_MS, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.folder = Path(folder) if folder else autosave_folder()
        self.path = self.folder / "autosave.json"
        self.marker = self.folder / "running.json"
        self.recovered = self.folder / "recovered.json"
        self.every_edits = every_edits
        self.error: str | None = None  # the last write failure (autosave never interrupts)
        self.active = False  # nothing is written before start(): a --screenshot run saves nothing
        self._edits = 0
        self._last_index = -1
        self._last_content = None  # the last scene seen, its time set aside
        self._timer = QTimer(self, singleShot=True, interval=after_ms)
        self._timer.timeout.connect(self.save_now)
        document.stateChanged.connect(self._changed)

    # ---- start and exit ----------------------------------------------------------------
    def start(self) -> Path | None:
        """Mark this run as running. Returns a copy of the crashed run's autosave, if the
        last run did not exit cleanly (the copy survives this run's own autosaves)."""
        crashed = self._previous_run_crashed() and self.path.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if crashed:
                shutil.copyfile(self.path, self.recovered)
            self.marker.write_text(json.dumps({"pid": os.getpid()}))
            self.active = True
        except OSError as exc:
            self.error = f"{self.folder}: {exc.strerror or exc}"
            return None
        return self.recovered if crashed else None

    def clean_exit(self) -> None:
        if not self.active:
            return
        self.save_now()
        self.active = False
        try:
            self.marker.unlink(missing_ok=True)
        except OSError:
            pass

    def _previous_run_crashed(self) -> bool:
        try:
            pid = json.loads(self.marker.read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            return self.marker.exists()  # unreadable marker: still a run that never cleaned up
        if not isinstance(pid, int) or pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True  # that run is gone and never removed its marker: it crashed
        except PermissionError:
            return False  # alive, someone else's process
        return False  # another studio is running right now: its marker is no crash

    # ---- saving ------------------------------------------------------------------------
    def _changed(self, state) -> None:
        # Playback moves the playhead 25 times a second without changing the scene: no write.
        content = state.timeless()
        if content == self._last_content:
            return
        self._last_content = content
        # Count undo steps, not state changes: a drag is one step however many mouse events
        # it has, so it never writes (and fsyncs) a file per mouse move.
        index = self.document.undo_stack.index()
        if index != self._last_index:
            self._last_index = index
            self._edits += 1
        if self._edits >= self.every_edits:
            self.save_now()
        elif not self._timer.isActive():
            self._timer.start()

    def save_now(self) -> bool:

        self._timer.stop()
        doc = self.document
        if not self.active or doc.state is None or doc.info is None:
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_session(self.path, doc.state, doc.info.ref)
        except OSError as exc:
            self.error = f"{self.path}: {exc.strerror or exc}"
            return False
        self._edits = 0
        self.error = None
        return True
