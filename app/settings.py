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


def names(key: str) -> list[str]:
    """A list of non-empty strings kept under `key`; anything else the file holds there is
    left out. A settings file is user-editable text (or, elsewhere, a registry or a plist):
    a number there raised TypeError in the window's constructor, so the studio did not start,
    and an empty value ("files=") made a blank Open Recent entry."""
    value = settings().value(key, [])
    if isinstance(value, str):  # QSettings returns a one-item list as a plain string
        value = [value]
    if not isinstance(value, (list, tuple)):
        return []
    return [v for v in value if isinstance(v, str) and v]


def text(key: str) -> str | None:
    """The non-empty string kept under `key`, else None (a number or bytes there, from a
    foreign settings file, made Path() raise when Export Image opened)."""
    value = settings().value(key)
    return value if isinstance(value, str) and value else None


def recent_files() -> list[str]:
    return names(RECENT_KEY)


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
