"""Autosave: the scene is written (as a session) every few edits or seconds, so a crash
loses at most the last few edits.

One autosave per studio: `autosave-PID-START-N.json` names the studio that writes it (its
process id, that process's start time, its number in the process), and a clean exit
removes it. So an autosave whose studio is no longer running was left by a crash and is
worth offering back. The start time tells a studio from a process that was given its PID
later (PIDs are reused); two studios running at once never share a file.

Recovery takes only a regular file of a session's size: a link (to /dev/zero, to someone's
file), a FIFO or anything larger is removed, never read or followed. The file is moved
(a rename: nothing is read, and of two studios starting at once only one gets it) to this
studio's own `recovered-PID-START-N.json`, which its autosaves never touch; a link planted
at that name is replaced, its target untouched. A clean exit removes both files.

The folder is QStandardPaths' AppDataLocation, or $STEERGAN_AUTOSAVE_DIR (tests)."""
from __future__ import annotations

import itertools
import os
import re
import stat
import weakref
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QTimer, Signal

from models.document.session import MAX_SESSION_BYTES, save_session

ENV_DIR = "STEERGAN_AUTOSAVE_DIR"
EVERY_EDITS = 5
AFTER_MS = 2000
# What a studio leaves in the folder: its autosave and the crashed scene it took over.
STUDIO_FILE = re.compile(r"^(?P<kind>autosave|recovered)-(?P<pid>\d+)-(?P<started>\d+)-(?P<number>\d+)\.json$")


def autosave_folder() -> Path:
    folder = os.environ.get(ENV_DIR) or QStandardPaths.writableLocation(
        QStandardPaths.StandardLocation.AppDataLocation)
    return Path(folder)


# ---- which studio, and is it still running ----------------------------------------------

def process_start_time(pid: int) -> int | None:
    """When process `pid` started (/proc/PID/stat field 22: clock ticks after boot), or
    None when there is no such process (or no /proc to ask)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # Field 2, the command name, is in parentheses and may itself hold spaces and ")".
    fields = text[text.rfind(b")") + 2:].split()
    try:
        return int(fields[19])  # field 22 counted from 1, less the 2 before the name
    except (IndexError, ValueError):
        return None


THIS_PROCESS_STARTED = process_start_time(os.getpid()) or 0  # 0: unknown here (no /proc)


@dataclass(frozen=True)
class Studio:
    pid: int
    started: int  # the process's start time; 0 where the system does not say
    number: int  # studios in one process (tests open several) are told apart by it

    @property
    def tag(self) -> str:
        return f"{self.pid}-{self.started}-{self.number}"


_numbers = itertools.count()
_studios_here: weakref.WeakValueDictionary[int, Autosaver] = weakref.WeakValueDictionary()


def is_running(studio: Studio) -> bool:
    """Whether the studio that named a file after itself still runs."""
    if studio.pid == os.getpid() and studio.started == THIS_PROCESS_STARTED:
        autosaver = _studios_here.get(studio.number)  # a studio of this process
        return autosaver is not None and autosaver.active
    if studio.started:
        # A process of that PID started at another time is not the studio: the PID was reused.
        return process_start_time(studio.pid) == studio.started
    return _pid_alive(studio.pid)  # no start time recorded: the PID is all there is


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's process
    return True


# ---- what crashed studios left --------------------------------------------------------

def left_by_crashes(folder: Path) -> list[tuple[Studio, Path]]:
    """The scene each studio that is no longer running left in `folder`, newest first: its
    autosave, or (when it had none yet) the crashed scene it had itself taken over."""
    kept: dict[Studio, Path] = {}
    for path in _studio_files(folder):
        m = STUDIO_FILE.match(path.name)
        studio = Studio(int(m["pid"]), int(m["started"]), int(m["number"]))
        if m["kind"] == "autosave" or studio not in kept:
            kept[studio] = path
    crashed = [(studio, path) for studio, path in kept.items() if not is_running(studio)]
    return sorted(crashed, key=lambda found: _modified(found[1]), reverse=True)


def _studio_files(folder: Path) -> list[Path]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [folder / name for name in names if STUDIO_FILE.match(name)]


def _modified(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _is_small_regular_file(path: Path) -> bool:
    """A regular file (not a link, a FIFO, a device) no larger than any session can be."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size <= MAX_SESSION_BYTES


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)  # a link goes, its target stays
    except OSError:
        pass


class Autosaver(QObject):
    # Autosave stopped working (a folder that cannot be written, a full disk): the message
    # names the file and why. Said once until a save works again: the user, who trusts the
    # autosave with the edits, must know to save them (it had failed silently).
    failed = Signal(str)

    def __init__(self, document, folder: str | Path | None = None, every_edits: int = EVERY_EDITS,
                 after_ms: int = AFTER_MS, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.folder = Path(folder) if folder else autosave_folder()
        self.studio = Studio(os.getpid(), THIS_PROCESS_STARTED, next(_numbers))
        _studios_here[self.studio.number] = self
        self.path = self.folder / f"autosave-{self.studio.tag}.json"
        self.recovered = self.folder / f"recovered-{self.studio.tag}.json"
        self.every_edits = every_edits
        self.error: str | None = None  # the last write failure (autosave never interrupts)
        # The crashed scene taken over at start() is kept, past even a clean exit, until it is
        # restored or declined (settle_recovered): a restore that failed (its checkpoint on a
        # drive not mounted, a file from a newer SteerGAN) had deleted it at the exit.
        self.recovered_pending = False
        self.active = False  # nothing is written before start(): a --screenshot run saves nothing
        self._edits = 0
        self._last_index = -1
        self._last_content = None  # the last scene seen, its time set aside
        self._timer = QTimer(self, singleShot=True, interval=after_ms)
        self._timer.timeout.connect(self.save_now)
        document.stateChanged.connect(self._changed)

    # ---- start and exit ----------------------------------------------------------------
    def start(self) -> Path | None:
        """Start autosaving. Returns the scene a crashed studio left, taken over as this
        studio's recovered file, or None."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(f"{self.folder}: cannot hold the autosave ({exc.strerror or exc})")
            return None
        self.active = True
        return self._take_over_crashed_scene()

    def _fail(self, message: str) -> None:
        if self.error is None:  # the first failure of a run of them: said once
            self.failed.emit(message)
        self.error = message

    def _take_over_crashed_scene(self) -> Path | None:
        for crashed, path in left_by_crashes(self.folder):
            if not _is_small_regular_file(path):
                _remove(path)  # a link (to /dev/zero, to someone's file), a FIFO, gigabytes: no scene
                continue
            try:
                # Moved, not copied: nothing is read, and the target name is this studio's own.
                os.rename(path, self.recovered)
            except OSError:
                continue  # another studio starting now took it first
            _remove(self.folder / f"recovered-{crashed.tag}.json")  # its older scene, superseded
            self.recovered_pending = True
            return self.recovered
        return None

    def clean_exit(self) -> None:
        """The studio closes as the user chose (saved or discarded): nothing to offer back."""
        if not self.active:
            return
        self._timer.stop()
        self.active = False
        _remove(self.path)
        if not self.recovered_pending:  # else offered again at the next start
            _remove(self.recovered)

    def settle_recovered(self) -> None:
        """The crashed scene was restored into the document, or the user declined it: a clean
        exit may remove it."""
        self.recovered_pending = False

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
            if self.path.is_symlink():  # the session writer would write through it
                raise OSError(f"{self.path.name} is a symbolic link; not writing through it")
            self.folder.mkdir(parents=True, exist_ok=True)
            save_session(self.path, doc.state, doc.info.ref)
        except OSError as exc:
            self._fail(f"{self.path}: cannot be written ({exc.strerror or exc})")
            return False
        self._edits = 0
        self.error = None
        return True
