"""Before the studio creates its QApplication on Linux: can Qt's xcb platform plugin load?

When a system library of the xcb plugin is missing, Qt aborts with "Could not load the
Qt platform plugin xcb", and its hint names libxcb-cursor0 whichever library is really
missing. Here the plugin's libraries are resolved the way the dynamic loader would (`ldd`
lists every library it needs, transitively, and "not found" for those it cannot find),
and the user is told which libraries are missing and which Debian/Ubuntu packages have
them. No Qt library is loaded for this: it runs before PySide6's Qt modules are imported.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PLUGIN = "libqxcb.so"
# Debian/Ubuntu packages of the libraries Qt's xcb plugin needs, for `apt install`
# (the README lists the same). Libraries not in this table get the Debian naming rule.
PACKAGES = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
}
REQUIRED_PACKAGES = ("libxcb-cursor0", "libxcb-icccm4", "libxcb-image0", "libxcb-keysyms1",
                     "libxcb-render-util0", "libxcb-shape0", "libxcb-xinerama0", "libxcb-xkb1",
                     "libxkbcommon-x11-0", "libegl1", "libgl1", "libfontconfig1", "libdbus-1-3")
NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def debian_package(library: str) -> str:
    """libxcb-icccm.so.4 -> libxcb-icccm4; libxkbcommon-x11.so.0 -> libxkbcommon-x11-0
    (Debian policy: the soname's version is appended, after a hyphen if the name ends in
    a digit)."""
    if library in PACKAGES:
        return PACKAGES[library]
    name, _, version = library.partition(".so")
    version = version.lstrip(".").split(".")[0]
    if not version:
        return name.lower()
    return f"{name}-{version}".lower() if name[-1:].isdigit() else f"{name}{version}".lower()


def wants_xcb(environ=os.environ, platform: str = sys.platform) -> bool:
    """Will Qt use the xcb plugin? Linux only; an explicit QT_QPA_PLATFORM decides; without
    it, Qt uses Wayland in a Wayland session and xcb otherwise."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        return chosen.split(";")[0].split(":")[0] == "xcb"
    return not environ.get("WAYLAND_DISPLAY")


def find_xcb_plugin(environ=os.environ) -> Path | None:
    """Where Qt will look for the plugin: QT_QPA_PLATFORM_PLUGIN_PATH, QT_PLUGIN_PATH,
    then PySide6's own plugins (found without importing PySide6's Qt libraries)."""
    folders = []
    if environ.get("QT_QPA_PLATFORM_PLUGIN_PATH"):
        folders.append(Path(environ["QT_QPA_PLATFORM_PLUGIN_PATH"]))
    for entry in environ.get("QT_PLUGIN_PATH", "").split(os.pathsep):
        if entry:
            folders.append(Path(entry) / "platforms")
    spec = importlib.util.find_spec("PySide6")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            folders.append(Path(location) / "Qt" / "plugins" / "platforms")
    return next((f / PLUGIN for f in folders if (f / PLUGIN).is_file()), None)


def missing_libraries(plugin: Path) -> list[str] | None:
    """The libraries the plugin needs that the loader cannot find, in ldd's order, each
    once. None when it cannot be told (no ldd: then Qt reports whatever happens)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return list(dict.fromkeys(NOT_FOUND.findall(out.stdout)))


def report(plugin: Path, missing: list[str]) -> str:
    packages = list(dict.fromkeys(debian_package(lib) for lib in missing))
    return "\n".join([
        "steergan: error: the studio cannot open a window: Qt's xcb platform plugin",
        f"  {plugin}",
        "needs these system libraries, which are not installed:",
        *(f"  {lib}  (Debian/Ubuntu package {debian_package(lib)})" for lib in missing),
        "Install them, e.g. on Debian or Ubuntu:",
        f"  sudo apt install {' '.join(packages)}",
        "(the README lists every package Qt needs on Linux). `steergan render` and the other",
        "subcommands work without them; QT_QPA_PLATFORM=offscreen runs the studio without a window.",
    ])


NO_DISPLAY = ("steergan: error: no display (DISPLAY/WAYLAND_DISPLAY unset): use `steergan render` or set"
              " QT_QPA_PLATFORM=offscreen")


def check_display(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Over SSH or in CI there is no display, and Qt's xcb plugin aborts (rc 134) with a hint
    about libxcb-cursor0 that has nothing to do with it: say what is wrong instead."""
    if not wants_xcb(environ, platform):
        return None
    return None if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY") else NO_DISPLAY


def check_xcb(environ=os.environ, platform: str = sys.platform) -> str | None:
    """The message to print when the studio's window cannot open for missing libraries;
    None when all is well (or it is not for xcb, or it cannot be told)."""
    if not wants_xcb(environ, platform):
        return None
    plugin = find_xcb_plugin(environ)
    if plugin is None:
        return None  # not this Qt's layout: let Qt itself report
    missing = missing_libraries(plugin)
    return report(plugin, missing) if missing else None
