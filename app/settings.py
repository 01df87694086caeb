"""Persistent preferences (QSettings): recent files, the export folder, window layout.

QSettings() takes the organisation and application names from QCoreApplication, set by
`studio.configure_app`; tests set other names and a temporary folder, so they never touch
the user's settings."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

ORGANIZATION = "SteerGAN"
APPLICATION = "SteerGAN Studio"
RECENT_KEY = "recent/files"
MAX_RECENT = 10


def settings() -> QSettings:
    return QSettings()


def recent_files() -> list[str]:
    value = settings().value(RECENT_KEY, [])
    if isinstance(value, str):  # QSettings returns a one-item list as a plain string
        value = [value]
    return [str(v) for v in (value or [])]


def add_recent(path: str | Path) -> list[str]:
    path = str(Path(path).resolve())
    files = [path] + [f for f in recent_files() if f != path]
    files = files[:MAX_RECENT]
    settings().setValue(RECENT_KEY, files)
    return files


def remove_recent(path: str) -> None:
    settings().setValue(RECENT_KEY, [f for f in recent_files() if f != path])


def get(key: str, default=None):
    return settings().value(key, default)


def put(key: str, value) -> None:
    settings().setValue(key, value)
