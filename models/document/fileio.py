"""Files in and out, safely.

Writing: every file SteerGAN writes (images, videos, sessions, checkpoints, training
states) goes through `atomic_target`: the data goes to a temporary file in the target's
folder, is flushed to disk and checked, and only then renamed over the target. A crash, a
kill, a full disk or an encoder that fails never leaves half a file where a good one was,
and a replaced file keeps its permissions. A kill -9 can leave the temporary file itself;
the next write into that folder removes such leftovers (see `clean_stale_temporaries`).

Reading: `open_regular` opens only regular files, without ever blocking on a FIFO or a
device, so a hostile path gives an error instead of a hang.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from models.config import short_repr

# Our temporaries: ".<target name>.sg<host>-<pid>.<random>.part". The host and pid say
# whether the writer can still be alive; the leading dot hides them in file browsers.
_HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"
_TEMP_NAME = re.compile(r"^\..+\.sg(?P<host>[0-9a-f]{4})-(?P<pid>\d+)\.[0-9a-f]{8}\.part$")
# What older SteerGAN versions left (tempfile.mkstemp names): removed once clearly stale.
_LEGACY_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.part(\.mp4|\.gif)?$")
STALE_AFTER_S = 3600.0  # a temporary untouched this long has no live writer


class FileProblem(Exception):
    """A path cannot be read as a file; `problem` says why (callers add the path and their
    own error type)."""

    def __init__(self, problem: str):
        self.problem = problem
        super().__init__(problem)


class JSONProblem(ValueError):
    """Text that is not JSON we can use; the message says why, after the caller's path."""


def loads_checked(text: str | bytes, what: str) -> Any:
    """json.loads whose every failure is a JSONProblem: bad JSON, bad UTF-8, numbers of
    thousands of digits (ValueError since Python 3.11) and deep nesting (RecursionError).
    The one checked JSON parser: torch-free, so the studio's menus use it too."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JSONProblem(f"{what} is nested too deeply to be ours") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise JSONProblem(f"{what} is not valid JSON ({str(exc)[:120]})") from None


class FileError(Exception):
    """A file SteerGAN reads or writes cannot be used: the message is "path: problem".

    The base of CheckpointError, SessionError, ExportError and TrainStateError, so a caller
    that only tells the user what went wrong (the CLI, the studio's open and export) can
    catch them all at once."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Exception's own pickling re-calls the class with args (the one message), which
        # does not fit (path, problem); copy and pickle need the two parts.
        return type(self), (self.path, self.problem)


def check_format_version(error: type[FileError], path: str | os.PathLike, version: Any, newest: int,
                         kind: str, hint: str = "") -> int:
    """The format version a file declares: a positive integer, at most the newest this
    SteerGAN reads; else `error(path, ...)` saying which."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise error(path, f"has an invalid {kind} version {short_repr(version)}")
    if version > newest:
        raise error(path, f"was written in {kind} version {version}; this SteerGAN reads up to version {newest}{hint}")
    return version


class ExportError(FileError):
    """An image or video cannot be written."""


# ---- reading ---------------------------------------------------------------------------

def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open `path` for binary reading if it is a regular file; FileProblem otherwise.

    Checked before opening (os.stat does not block on a FIFO) and again on the open file:
    O_NONBLOCK makes the open itself return at once even if the path was swapped for a FIFO
    in between, and fstat then refuses it."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        raise FileProblem("no such file") from None
    except OSError as exc:
        raise FileProblem(f"cannot be read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the name
        raise FileProblem("is not a possible file name (it contains a NUL character)") from None
    if not stat.S_ISREG(before.st_mode):
        raise FileProblem(f"is {_kind(before.st_mode)}, not a file SteerGAN can read")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileProblem(f"cannot be read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileProblem(f"is {_kind(mode)}, not a file SteerGAN can read")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole of a regular file of at most `max_bytes` bytes; FileProblem otherwise."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise FileProblem(f"is {size} bytes, more than the {max_bytes} such a file can be")
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise FileProblem(f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # it grew while we read it
        raise FileProblem(f"is more than {max_bytes} bytes")
    return data


def file_sha256(path: str | os.PathLike) -> str:
    with open_regular(path) as f:
        return stream_sha256(f)


def stream_sha256(f: BinaryIO) -> str:
    h = hashlib.sha256()
    f.seek(0)
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


# ---- writing ---------------------------------------------------------------------------

@contextmanager
def locked(lock_path: Path | None):
    """Serialise writes into one folder across processes (the GPU run's workers and its
    summary): at most one half-written temporary file exists there at any moment (the folder
    may hold only 8 files). None: no lock."""
    if lock_path is None:
        yield
        return
    import fcntl  # POSIX only: the GPU run's machine (the studio never takes this lock)

    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def temporary_target(name: str) -> str | None:
    """The name of the file that a temporary of ours (AtomicTarget's `.NAME.sgHOST-PID.RANDOM.part`)
    was to replace, e.g. one a kill left behind mid-write; None for any other name."""
    m = _TEMP_NAME.match(name)
    return None if m is None else name[1:m.start("host") - len(".sg")]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike, now: float | None = None) -> list[str]:
    """Remove our own temporaries in `folder` whose writer is gone: its process (on this
    machine) has ended, or the file has not been touched for STALE_AFTER_S. Returns the
    names removed. Never raises: cleaning is a courtesy, not part of the write."""
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(os.scandir(os.fspath(folder)))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(".") or ".part" not in entry.name:
            continue
        ours = _TEMP_NAME.match(entry.name)
        if ours is None and _LEGACY_TEMP_NAME.match(entry.name) is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                continue
            stale = now - info.st_mtime > STALE_AFTER_S
            if ours is not None and ours["host"] == _HOST:
                pid = int(ours["pid"])
                if pid == os.getpid():
                    continue  # another thread of ours may be writing it
                stale = stale or not _pid_alive(pid)
            if stale:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue
    return removed


def _target_mode(target: Path) -> int | None:
    """The permission bits to keep (None: the target does not exist). Refuses a target that
    is not a regular file: renaming over a FIFO, a device or a folder is never what the
    user meant."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EEXIST, f"{target} exists and is {_kind(info.st_mode)}; not replacing it")
    return stat.S_IMODE(info.st_mode)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; not every file system can, which is fine."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicTarget:
    """A new file for `path`, written to a temporary file beside it (`self.tmp`) and put in
    place by `commit()` only: flushed to disk, checked with `check(tmp)` (raise to refuse
    it; an empty file is always refused), given the mode of the file it replaces, renamed
    over `path`. `discard()` (or a failed commit) removes the temporary file and leaves the
    target as it was.

    The temporary file is created with mode 0o666 and the kernel applies the umask, as for a
    plain open(): no process-wide umask change, so threads may write at the same time.
    A symlink is followed: the file it points to is replaced, the link stays."""

    def __init__(self, path: str | os.PathLike, check: Callable[[str], None] | None = None):
        self.target = Path(os.path.realpath(path))
        self.check = check
        folder = self.target.parent
        clean_stale_temporaries(folder)
        self.keep_mode = _target_mode(self.target)
        self.tmp = str(folder / f".{self.target.name}.sg{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.part")
        os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666))
        self.done = False

    def commit(self) -> None:
        try:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the data is on disk before the rename makes it visible
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size == 0:
                raise OSError(errno.EIO, "the written file is empty")
            if self.check is not None:
                self.check(self.tmp)
            if self.keep_mode is not None:
                os.chmod(self.tmp, self.keep_mode)
            os.replace(self.tmp, self.target)
        except BaseException:
            self.discard()
            raise
        self.done = True
        _fsync_folder(self.target.parent)

    def discard(self) -> None:
        if not self.done:
            self.done = True
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


@contextmanager
def atomic_target(path: str | os.PathLike, check: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yield a temporary path to write the new file to; committed (see AtomicTarget) on a
    clean exit, discarded on an error, which propagates."""
    target = AtomicTarget(path, check)
    try:
        yield target.tmp
    except BaseException:
        target.discard()
        raise
    target.commit()


def write_all(f: BinaryIO, data: bytes) -> None:
    """f.write, in its own function so that tests can stand in for a full disk."""
    f.write(data)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see atomic_target), checking the written size."""

    def same_size(tmp: str) -> None:
        written = os.stat(tmp).st_size
        if written != len(data):
            raise OSError(errno.EIO, f"wrote {written} of {len(data)} bytes")

    with atomic_target(path, check=same_size) as tmp:
        with open(tmp, "wb") as f:
            write_all(f, data)


IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    """`data` as indented, key-sorted JSON (anything else as its str), written atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode())


def write_image(path: str | os.PathLike, image, quality: int = 95) -> None:
    """Encode an [H, W, 3] uint8 array by the file's extension and write it atomically."""
    import io

    from PIL import Image

    path = Path(path)
    fmt = IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExportError(path, f"unknown image type {path.suffix!r}; use one of {sorted(IMAGE_FORMATS)}")
    if not path.parent.is_dir():
        raise ExportError(path, f"the folder {path.parent} does not exist")
    buf = io.BytesIO()
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    Image.fromarray(image).save(buf, format=fmt, **options)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        raise ExportError(path, f"cannot write here ({exc.strerror or exc})") from None
