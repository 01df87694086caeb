"""Export, sessions, bad checkpoints, recent files, drag-and-drop, autosave and restore."""
import os

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox
from test_app_helpers import (
    answer_modal_dialog,
    assert_shows_render_of,
    drag,
    shown_image,
    wait_for_current_frame,
    widget_point,
)

from app import settings
from app.export import ExportOptions
from models.document.session import load_session
from models.render import render, resize_image

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


def export(qtbot, w, options):
    with qtbot.waitSignal(w.files.exportFinished, timeout=20000) as sig:
        w.files.export(options)
    return sig.args[1]


def test_export_equals_render_of_the_state(qtbot, make_window, tiny_checkpoints, tmp_path):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    start = widget_point(w.canvas, *w.document.state.objects[0].center)
    drag(qtbot, w.canvas, start, start + QPoint(30, 30))
    state = w.document.state  # exported as soon as its frame arrives
    assert export(qtbot, w, ExportOptions(str(tmp_path / "native.png")))
    expected = render(g, state).image
    assert np.array_equal(np.asarray(Image.open(tmp_path / "native.png")), expected)
    assert export(qtbot, w, ExportOptions(str(tmp_path / "big.webp"), size=128))
    big = Image.open(tmp_path / "big.webp")
    assert big.size == (128, 128) and big.format == "WEBP"
    assert export(qtbot, w, ExportOptions(str(tmp_path / "crisp.png"), size=64, smooth=False))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "crisp.png")), resize_image(expected, 64, smooth=False))
    assert export(qtbot, w, ExportOptions(str(tmp_path / "over.jpg"), size=96, overlays=True))
    assert Image.open(tmp_path / "over.jpg").size == (96, 96)
    assert settings.get("export/folder") == str(tmp_path)  # the folder is remembered
    assert w.document.state == state and not list(tmp_path.glob("*.part"))


def test_export_to_an_unwritable_place_says_why_and_changes_nothing(qtbot, make_window, tiny_checkpoints, tmp_path):
    w = make_window(tiny_checkpoints["rooms"][0])
    state, count = w.document.state, w.document.undo_stack.count()
    assert not export(qtbot, w, ExportOptions(str(tmp_path / "no" / "such" / "dir" / "x.png")))
    assert "does not exist" in w.last_error[1]
    assert not export(qtbot, w, ExportOptions(str(tmp_path / "x.tiff")))
    assert "unknown image type" in w.last_error[1]
    if os.geteuid() != 0:  # root can write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert not export(qtbot, w, ExportOptions(str(ro / "x.png")))
        assert "cannot write" in w.last_error[1]
    assert w.document.state == state and w.document.undo_stack.count() == count


def test_session_round_trip(qtbot, make_window, tiny_checkpoints, tmp_path):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    start = widget_point(w.canvas, *w.document.state.objects[1].center)
    drag(qtbot, w.canvas, start, start + QPoint(-20, 25))
    qtbot.keyClick(w, Qt.Key.Key_O)
    saved = w.document.state
    session = tmp_path / "scene.json"
    assert w.files.save_session(session)
    assert load_session(session)[0] == saved
    assert "scene.json" in w.windowTitle()
    qtbot.keyClick(w, Qt.Key.Key_N)  # change the scene, then open the session again
    assert w.document.state != saved
    w.files.open_session(session)
    assert w.document.state == saved
    # a fresh window, on another generator, reopens the session's checkpoint and scene
    w2 = make_window(arch="tiny-plain")
    w2.files.open_session(session)
    qtbot.waitUntil(lambda: w2.document.state == saved, timeout=20000)
    wait_for_current_frame(qtbot, w2)
    assert_shows_render_of(w2, g)


def test_bad_files_leave_the_window_usable_with_the_same_state(qtbot, make_window, tiny_checkpoints, tmp_path):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path)
    state, image = w.document.state, shown_image(w).copy()
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 4 + b"not a checkpoint")
    with qtbot.waitSignal(w.files.loadFinished, timeout=20000) as sig:
        w.files.open_path(bad)
    assert sig.args == [False]
    title, message = w.last_error
    assert "broken.safetensors" in title and "broken.safetensors" in message and "truncated" in message
    box = next(b for b in w.findChildren(QMessageBox) if b.isVisible())
    assert "broken.safetensors" in box.text()
    box.accept()
    assert w.document.state == state and w.document.info.path == str(path)
    assert np.array_equal(shown_image(w), image) and not w.busy.isVisible()
    broken_session = tmp_path / "broken.json"
    broken_session.write_text("{nope")
    w.files.open_path(broken_session)
    assert "broken.json" in w.last_error[1] and w.document.state == state
    qtbot.keyClick(w, Qt.Key.Key_N)  # still usable: edits render with the same generator
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)


def test_recent_files_and_drop_onto_the_window(qtbot, make_window, tiny_checkpoints):
    rooms, figures = tiny_checkpoints["rooms"][0], tiny_checkpoints["figures"][0]
    w = make_window(rooms)
    assert settings.recent_files()[0] == str(rooms.resolve())
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(figures))])
    enter = QDragEnterEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(w, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(w, drop)
    qtbot.waitUntil(lambda: w.document.config is not None and w.document.config.hierarchical, timeout=20000)
    assert settings.recent_files()[:2] == [str(figures.resolve()), str(rooms.resolve())]
    recent = w.recent_menu.actions()
    assert [a.text() for a in recent] == ["figures.safetensors", "rooms.safetensors"]
    recent[1].trigger()
    qtbot.waitUntil(lambda: w.document.config.objects == 2, timeout=20000)


def test_autosave_and_restore_after_a_crash(qtbot, make_window, tiny_checkpoints, studio_env):
    from app.autosave import Autosaver
    from app.studio import offer_restore

    path, _ = tiny_checkpoints["rooms"]
    w = make_window(path)
    assert w.autosaver.start() is None  # no crash before this run
    for _ in range(5):  # five edits: autosaved without waiting for the timer
        qtbot.keyClick(w, Qt.Key.Key_N)
    edited = w.document.state
    autosave = w.autosaver.path
    assert autosave.parent == studio_env / "autosave" and f"-{os.getpid()}-" in autosave.name  # this studio's
    assert load_session(autosave)[0] == edited

    # This run "crashes": it stops without its clean exit. The next start offers its autosave back.
    w.autosaver.active = False
    w2 = make_window(arch="tiny-plain")
    recovered = w2.autosaver.start()
    assert recovered is not None and load_session(recovered)[0] == edited
    offer_restore(w2, recovered)
    w2.restore_prompt.accept()
    qtbot.waitUntil(lambda: w2.document.state == edited, timeout=20000)

    # A clean exit removes the marker: no offer next time. (The restored scene is unsaved:
    # closing asks, and Discard closes.)
    answered = answer_modal_dialog(
        qtbot, lambda box: box.button(QMessageBox.StandardButton.Discard).click())
    w2.close()
    assert answered()
    assert os.listdir(studio_env / "autosave") == []  # the crash's scene was taken over; this exit was clean
    assert Autosaver(w.document, studio_env / "autosave").start() is None


@pytest.mark.parametrize("args", [["--arch", "tiny-rooms"], ["SESSION"]])
def test_screenshot_mode_writes_a_grab_of_the_window(studio_env, tiny_checkpoints, tmp_path, args):
    from app.cli import main
    from models.document.scene import initial_state
    from models.document.session import CheckpointRef, save_session

    if args == ["SESSION"]:
        path, g = tiny_checkpoints["figures"]
        session = tmp_path / "fig.json"
        save_session(session, initial_state(g.config, 5), CheckpointRef(str(path), None))
        args = [str(session)]
    out = tmp_path / "shot.png"
    assert main(["--screenshot", str(out)] + args) == 0
    shot = Image.open(out)
    assert shot.size[0] >= 800 and shot.size[1] >= 500
    assert np.asarray(shot).std() > 5  # not a blank grab
    assert main(["--screenshot", str(tmp_path / "x.png"), str(tmp_path / "missing.safetensors")]) == 2


def test_bundled_models_menu_opens_a_shipped_generator(qtbot, make_window, tiny_checkpoints, tmp_path, monkeypatch):
    """File > Open Bundled Model lists the generators in checkpoints/ (not the metrics'
    probe) and opens the one chosen, from the keyboard."""
    import shutil

    from models.io import bundled

    folder = tmp_path / "shipped"
    folder.mkdir()
    for name in ("rooms", "figures"):
        shutil.copy(tiny_checkpoints[name][0], folder / f"{name}-cpu.safetensors")
    (folder / "probe.safetensors").write_bytes(b"not a generator")
    monkeypatch.setattr(bundled, "CHECKPOINT_DIR", folder)
    monkeypatch.setattr(bundled, "DEFAULT_CHECKPOINTS",
                        (folder / "rooms.safetensors", folder / "rooms-cpu.safetensors"))
    w = make_window(tiny_checkpoints["rooms"][0])
    texts = [a.text() for a in w.bundled_menu.actions()]
    assert [t.split("  —  ")[0] for t in texts] == ["figures-cpu", "rooms-cpu"]
    # How each was trained, read from its header (the tiny test checkpoints were never trained),
    # and which one the studio opens when started without a path.
    assert texts[0].endswith(" px, untrained") and texts[1].endswith(" px, untrained  (default)"), texts
    assert w.bundled_menu.actions()[0].toolTip() == str(folder / "figures-cpu.safetensors")
    # The menu from the keyboard, as a user would: open it, go to its first entry, Enter.
    w.bundled_menu.popup(w.mapToGlobal(QPoint(10, 10)))
    qtbot.waitUntil(w.bundled_menu.isVisible, timeout=20000)
    qtbot.keyClick(w.bundled_menu, Qt.Key.Key_Down)
    assert w.bundled_menu.activeAction() is w.bundled_menu.actions()[0]
    qtbot.keyClick(w.bundled_menu, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.document.config is not None and w.document.config.hierarchical, timeout=20000)
    assert w.document.info.ref.path == str((folder / "figures-cpu.safetensors").resolve())


def test_no_bundled_models_disables_the_menu(make_window, tmp_path, monkeypatch):
    from models.io import bundled

    monkeypatch.setattr(bundled, "CHECKPOINT_DIR", tmp_path / "missing")
    w = make_window(arch="tiny-rooms")
    assert not w.bundled_menu.isEnabled() and w.bundled_menu.isEmpty()


def test_new_sample_of_a_skeleton_model_keeps_a_person_like_layout(qtbot, make_window, tmp_path):
    """figures-cpu was trained on figure skeletons: the studio's first scene and every New
    Sample (the N key) place the head and shoulders above the torso and the knees below."""
    import dataclasses

    import torch

    from models.config import architecture
    from models.io.checkpoint import save_checkpoint
    from models.nets.generator import Generator

    torch.manual_seed(0)
    g = Generator(dataclasses.replace(architecture("tiny-figures"), layout_prior="skeleton"))
    g.update_w_avg()
    path = tmp_path / "skeleton.safetensors"
    save_checkpoint(path, g, {"name": "tiny skeleton figures"}, dtype=torch.float32)
    w = make_window(path)
    assert w.document.config.layout_prior == "skeleton"
    layouts = [w.document.state.hierarchy]
    for _ in range(6):
        before = w.document.state
        qtbot.keyClick(w, Qt.Key.Key_N)
        qtbot.waitUntil(lambda before=before: w.document.state != before, timeout=20000)
        layouts.append(w.document.state.hierarchy)
    assert all(h.offsets1[0][1] < 0 < h.offsets1[1][1] for h in layouts)
