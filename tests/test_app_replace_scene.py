"""Issue 25, items 1-3: opening another model with unsaved edits asks first (every way of
opening), a damaged file in checkpoints/ breaks nothing, and no display is one clear line."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox
from test_app_helpers import answer_modal_dialog

pytest_plugins = ["test_app_helpers"]

REPO = Path(__file__).resolve().parent.parent


def _press(button):
    def answer(box):
        assert isinstance(box, QMessageBox) and "before opening" in box.text(), box
        box.button(button).click()
    return answer


def _drop(window, path):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    QApplication.sendEvent(window, QDragEnterEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                                                   Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    QApplication.sendEvent(window, QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


def _open_via(way, window, path, monkeypatch):
    """Each way a user replaces the scene, driven as the user does it."""
    if way == "drop":
        _drop(window, path)
    elif way == "recent":
        window._fill_recent([str(path)])
        window.recent_menu.actions()[0].trigger()
    elif way == "bundled":
        monkeypatch.setattr("app.main_window.bundled_generators", lambda: [Path(path)])
        window._fill_bundled()
        window.bundled_menu.actions()[0].trigger()
    elif way == "ctrl+o":
        monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
        from PySide6.QtGui import QKeySequence
        from PySide6.QtTest import QTest
        if QApplication.activeWindow() is window:
            QTest.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
        else:  # offscreen, activation may lag after a dialog: the action the shortcut triggers
            ctrl_o = QKeySequence("Ctrl+O")
            next(a for a in window.actions() + window.findChildren(type(window.menuBar().actions()[0]))
                 if ctrl_o in a.shortcuts()).trigger()


@pytest.mark.parametrize("way", ["drop", "recent", "bundled", "ctrl+o"])
def test_unsaved_edits_are_not_replaced_without_asking(qtbot, make_window, tiny_checkpoints, monkeypatch, way):
    rooms, figures = tiny_checkpoints["rooms"][0], tiny_checkpoints["figures"][0]
    w = make_window(rooms)
    qtbot.keyClick(w, Qt.Key.Key_N)  # an edit: Untitled*
    edited = w.document.state
    answered = answer_modal_dialog(qtbot, _press(QMessageBox.StandardButton.Cancel))
    _open_via(way, w, figures, monkeypatch)
    qtbot.waitUntil(answered)
    qtbot.wait(200)  # a load, had one started, would have begun by now
    assert not w.files.loading and w.document.state == edited and w.isWindowModified()
    qtbot.waitUntil(lambda: w.close_prompt is None)  # our question is gone
    w.activateWindow()  # the user is back in the window: its shortcuts apply again
    answered = answer_modal_dialog(qtbot, _press(QMessageBox.StandardButton.Discard))
    _open_via(way, w, figures, monkeypatch)
    qtbot.waitUntil(lambda: answered() and w.document.config.hierarchical, timeout=20000)


def test_open_with_save_writes_the_session_first(qtbot, make_window, tiny_checkpoints, tmp_path):
    from models.document.session import load_session

    rooms, figures = tiny_checkpoints["rooms"][0], tiny_checkpoints["figures"][0]
    w = make_window(rooms)
    assert w.files.save_session(tmp_path / "kept.json")
    qtbot.keyClick(w, Qt.Key.Key_N)
    edited = w.document.state
    answered = answer_modal_dialog(qtbot, _press(QMessageBox.StandardButton.Save))
    _drop(w, figures)
    qtbot.waitUntil(lambda: answered() and w.document.config.hierarchical, timeout=20000)
    assert load_session(tmp_path / "kept.json")[0] == edited


def test_without_edits_opening_asks_nothing(qtbot, make_window, tiny_checkpoints):
    rooms, figures = tiny_checkpoints["rooms"][0], tiny_checkpoints["figures"][0]
    w = make_window(rooms)
    _drop(w, figures)  # a question would block here: the load would never finish
    qtbot.waitUntil(lambda: w.document.config.hierarchical, timeout=20000)


# ---- 2. one damaged file in checkpoints/ ------------------------------------------------------

def _header_file(path: Path, meta_text: str) -> Path:
    header = json.dumps({"__metadata__": {"steergan": meta_text}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


def test_damaged_headers_read_as_nothing(tmp_path):
    from models.io.bundled import describe, stored_meta

    deep = _header_file(tmp_path / "zz.safetensors", "[" * 100_000)
    assert stored_meta(deep) is None  # was RecursionError, which aborted start-up
    nested = tmp_path / "nested.safetensors"
    text = b"[" * 50_000
    nested.write_bytes(struct.pack("<Q", len(text)) + text)
    assert stored_meta(nested) is None
    huge = _header_file(tmp_path / "huge.safetensors",
                        json.dumps({"trained_on": {"images": 5}}).replace("5}", "5, \"minutes\": " + "9" * 400 + "}"))
    meta = stored_meta(huge)
    assert meta is not None and describe(meta) == "5 images"  # was OverflowError
    os.mkfifo(tmp_path / "fifo.safetensors")
    assert stored_meta(tmp_path / "fifo.safetensors") is None  # never blocks


def test_damaged_default_falls_back(tmp_path, monkeypatch):
    import models.io.bundled as bundled

    broken = _header_file(tmp_path / "rooms.safetensors", "[" * 100_000)
    good = tmp_path / "rooms-cpu.safetensors"
    good.write_bytes((REPO / "checkpoints" / "rooms-cpu.safetensors").read_bytes())
    monkeypatch.setattr(bundled, "DEFAULT_CHECKPOINTS", (broken, good))
    assert bundled.default_checkpoint() == good


def test_studio_starts_with_a_damaged_file_in_checkpoints(qtbot, make_window, tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    _header_file(folder / "zz.safetensors", "[" * 100_000)
    (folder / "ok.safetensors").write_bytes((REPO / "checkpoints" / "rooms-cpu.safetensors").read_bytes())
    from models.io import bundled

    real = bundled.bundled_generators
    monkeypatch.setattr("app.main_window.bundled_generators", lambda: real(folder))
    w = make_window(arch="tiny-rooms")
    w._fill_bundled()
    labels = [a.text() for a in w.bundled_menu.actions()]
    assert labels[0].startswith("ok  —  64 px") and labels[1] == "zz"  # listed; opening it says why


# ---- 3. no display -----------------------------------------------------------------------------

def test_no_display_is_one_clear_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "app.cli"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("steergan: error: no display (DISPLAY/WAYLAND_DISPLAY unset): use `steergan"
                                   " render` or set QT_QPA_PLATFORM=offscreen")


def test_unknown_subcommand_is_not_opened_as_a_file(capsys):
    from app.cli import main

    assert main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert "unknown subcommand 'bogus'" in err and "render" in err
