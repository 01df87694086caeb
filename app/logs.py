"""The studio's log: where the "steergan" loggers' records go, set up once at start-up.

A failure the user sees as one short line (the status bar, a dialog) keeps its traceback
here: steergan.log in the app's data folder (QStandardPaths' AppDataLocation, the folder
autosave uses, or $STEERGAN_LOG_DIR: tests), rotated at 1 MiB with 3 older files kept, so
a bug report can carry it and the disk never fills. `steergan -v` also writes the log to
stderr. A folder that cannot be written never stops the studio: it runs without a log
file, and says so once on stderr."""
from __future__ import annotations

import logging
import os
import sys
import threading
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOGGER = "steergan"  # modules log to children: logging.getLogger("steergan.worker")
ENV_DIR = "STEERGAN_LOG_DIR"
FILE_NAME = "steergan.log"
MAX_BYTES = 1 << 20
BACKUPS = 3
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
        file_handler = RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
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
