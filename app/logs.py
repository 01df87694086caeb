"""The studio's log: where the "steergan" loggers' records go, set up once at start-up.

A failure the user sees as one short line (the status bar, a dialog) keeps its traceback
here: steergan.log in the app's data folder (QStandardPaths' AppDataLocation, the folder
autosave uses, or $STEERGAN_LOG_DIR: tests), rotated at 1 MiB with 3 older files kept, so
a bug report can carry it and the disk never fills. `steergan -v` also writes the log to
stderr. A folder that cannot be written never stops the studio: it runs without a log
file, and says so once on stderr.

The file is only ever opened through `open_log_file`: a regular file, never through a
symlink, never waiting on a FIFO. A rotation that cannot be done (a folder in the way,
say steergan.log.3) is said once, and the log carries on unrotated up to the space the
rotated files would have had."""
from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOGGER = "steergan"  # modules log to children: logging.getLogger("steergan.worker")
ENV_DIR = "STEERGAN_LOG_DIR"
FILE_NAME = "steergan.log"
MAX_BYTES = 1 << 20
BACKUPS = 3
UNROTATED_MAX_BYTES = MAX_BYTES * (BACKUPS + 1)  # a log that cannot rotate stops here
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"

_installed: list[logging.Handler] = []  # ours, so that configuring again replaces them


def log_folder() -> Path | None:
    """$STEERGAN_LOG_DIR, else the app's data folder; None when Qt knows none."""
    folder = os.environ.get(ENV_DIR)
    if not folder:
        from PySide6.QtCore import QStandardPaths

        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(folder) if folder else None  # "" would be the current folder: never write there


def configure_logging(verbose: bool = False, folder: str | Path | None = None) -> Path | None:
    """Send the "steergan" records to the log file (and stderr when `verbose`). Returns the
    log file, or None when there is none. Call it after the application's name is set
    (app/studio.py's configure_app): the data folder is named after it."""
    logger = logging.getLogger(LOGGER)
    remove_handlers()
    logger.setLevel(logging.INFO)
    formatter = logging.Formatter(FORMAT)
    path = None
    folder = Path(folder) if folder else log_folder()
    try:
        if folder is None:
            raise OSError("the system names no data folder")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILE_NAME
        file_handler = LogFile(path)
    except OSError as exc:
        where = f" in {folder}" if folder is not None else ""
        print(f"steergan: no log file{where} ({exc.strerror or exc}); the studio runs without one",
              file=sys.stderr)
        path = None
    else:
        _install(logger, file_handler, formatter)
    if verbose:
        _install(logger, logging.StreamHandler(sys.stderr), formatter)
    # With no handler at all, Python's last-resort handler would print every error to
    # stderr; the user was told there is no log file, and -v is how to ask for stderr.
    _install(logger, logging.NullHandler(), formatter)
    log_uncaught()
    return path


def open_log_file(path: str | os.PathLike, encoding: str = "utf-8"):
    """`path` opened for appending (created if missing) if it is a regular file; OSError
    saying why not otherwise. O_NOFOLLOW: a symlink is refused, never written through;
    O_NONBLOCK: a FIFO fails at once (or, with a reader, is refused by fstat) instead of
    blocking start-up until someone reads it."""
    refusal = _not_a_log_file(path)
    if refusal:
        raise OSError(errno.EINVAL, f"{Path(path).name} {refusal}")
    flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    fd = os.open(path, flags, 0o666)  # less the umask, as open() would
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped in since the check above
            raise OSError(errno.EINVAL, f"{Path(path).name} is not a regular file")
        os.set_blocking(fd, True)
        # backslashreplace: a file name that is not UTF-8 (Python holds its bytes as lone
        # surrogates) lost the whole record, traceback and all, to a "Logging error" on stderr.
        return os.fdopen(fd, "a", encoding=encoding, errors="backslashreplace")
    except BaseException:
        os.close(fd)
        raise


def _not_a_log_file(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be the log (a clearer reason than the open's errno), or None."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return "is a symbolic link, not followed"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    return None


class LogFile(RotatingFileHandler):
    """steergan.log, rotated at MAX_BYTES, opened only through open_log_file (at once, so a
    refused file is said at start-up; again after each rotation). A rotation or a reopen
    that fails is said once on stderr instead of a traceback per record: the log then
    carries on unrotated (up to UNROTATED_MAX_BYTES), or without a file."""

    def __init__(self, path: str | os.PathLike):
        # delay: the standard handler would open with the plain open(), which follows
        # links and waits on a FIFO. It opens (and reopens) through _open below.
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
        self.rotating = True
        self.lost = False  # the file could not be reopened: no file from then on
        self.stream = self._open()

    def _open(self):
        return open_log_file(self.baseFilename, self.encoding)

    def shouldRollover(self, record) -> bool:
        return self.rotating and super().shouldRollover(record)

    def doRollover(self) -> None:
        try:
            super().doRollover()
        except OSError as exc:  # each record would try again, and print a traceback each time
            self.rotating = False
            _say(f"cannot rotate the log {self.baseFilename} ({exc.strerror or exc}); it carries on"
                 f" unrotated, up to {UNROTATED_MAX_BYTES >> 20} MiB")

    def emit(self, record) -> None:
        # BaseRotatingHandler.emit, with the file reopened through _reopen: a file that
        # cannot be reopened (or written past the cap) is said once, not once per record.
        if self.lost:
            return
        try:
            if self.shouldRollover(record):
                self.doRollover()  # closes the file, whether the renames work or not
            if self.stream is None and not self._reopen():
                return
            if not self.rotating and os.fstat(self.stream.fileno()).st_size >= UNROTATED_MAX_BYTES:
                return  # the disk never fills, rotated or not
            logging.StreamHandler.emit(self, record)
        except Exception:  # noqa: BLE001 - what every logging handler does: report, never raise
            self.handleError(record)

    def _reopen(self) -> bool:
        """Open the file again after a rotation (or a failed one)."""
        try:
            self.stream = self._open()
        except OSError as exc:
            self.lost = True
            _say(f"cannot reopen the log {self.baseFilename} ({exc.strerror or exc}); the studio runs on"
                 " without it")
            return False
        return True


def _say(message: str) -> None:
    print(f"steergan: {message}", file=sys.stderr)


def log_uncaught() -> None:
    """Exceptions that nothing caught (in a Qt slot: PySide reports them through
    sys.excepthook; in a thread) reach the log too, then the hook that was there before
    (which prints them as usual). Installed once, however often logging is configured."""
    log = logging.getLogger(LOGGER + ".uncaught")
    if not getattr(sys.excepthook, "steergan_logs", False):
        previous = sys.excepthook

        def log_then_report(kind, value, tb):
            log.error("uncaught %s", kind.__name__, exc_info=(kind, value, tb))
            previous(kind, value, tb)

        log_then_report.steergan_logs = True  # type: ignore[attr-defined]
        sys.excepthook = log_then_report
    if not getattr(threading.excepthook, "steergan_logs", False):
        previous_thread = threading.excepthook

        def log_thread_then_report(args):
            if args.exc_type is not SystemExit:
                name = args.thread.name if args.thread is not None else "?"
                log.error("uncaught %s in thread %s", args.exc_type.__name__, name,
                          exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
            previous_thread(args)

        log_thread_then_report.steergan_logs = True  # type: ignore[attr-defined]
        threading.excepthook = log_thread_then_report


def _install(logger: logging.Logger, handler: logging.Handler, formatter: logging.Formatter) -> None:
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    _installed.append(handler)


def remove_handlers() -> None:
    """Take configure_logging's handlers off again (closing the file)."""
    logger = logging.getLogger(LOGGER)
    while _installed:
        handler = _installed.pop()
        logger.removeHandler(handler)
        handler.close()
