"""What the session-28 audit of app/ found: exports that replaced files unasked, a close whose
save failed silently, a session's file left as the save target after undo, a load overtaking a
later open, a changed checkpoint opened without a word, a seed box out of step with the scene,
and a session saved without its suffix."""
import errno
import shutil

import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox
from test_app_helpers import answer_modal_dialog, wait_for_current_frame

from app import settings
from app.export import ExportDialog
from app.fitting import copy_fit_beside
from models.config import architecture
from models.document.session import load_session
from models.io.checkpoint import save_checkpoint
from models.nets.generator import Generator

pytest_plugins = ["test_app_helpers"]


def test_an_export_dialog_asks_beside_its_fields_before_replacing_a_file(qtbot, studio_env, tmp_path):
    settings.put("export/folder", str(tmp_path))
    (tmp_path / "scene.png").write_bytes(b"the user's earlier export")
    dialog = ExportDialog(64, "scene")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.path.text() == str(tmp_path / "scene-2.png")  # the name offered is a free one
    dialog.path.selectAll()
    qtbot.keyClicks(dialog.path, str(tmp_path / "scene.png"))  # the user types the taken one
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and dialog.result() == 0  # not accepted: asked first
    assert dialog.note.isVisible() and "scene.png already exists" in dialog.note.text()
    assert dialog.save_button.text() == "Replace"
    qtbot.keyClicks(dialog.path, "x")  # another name: the question goes
    assert not dialog.note.isVisible() and dialog.save_button.text() == "Save"
    qtbot.keyClick(dialog.path, Qt.Key.Key_Backspace)  # back to the taken name: asked again
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and dialog.save_button.text() == "Replace"
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)  # Replace: accepted
    assert dialog.result() == ExportDialog.DialogCode.Accepted and dialog.options().path == str(tmp_path / "scene.png")


def window_with_a_saved_session(qtbot, make_window, checkpoint, session):
    """A window on `checkpoint` with a new sample drawn and saved as `session`: (window, scene)."""
    w = make_window(checkpoint)
    qtbot.keyClick(w, Qt.Key.Key_N)
    assert w.files.save_session(session)
    return w, w.document.state


def test_undo_after_opening_a_session_cannot_leave_its_file_the_save_target(qtbot, make_window, tiny_checkpoints,
                                                                            tmp_path):
    session = tmp_path / "mine.json"
    w, saved = window_with_a_saved_session(qtbot, make_window, tiny_checkpoints["rooms"][0], session)
    qtbot.keyClick(w, Qt.Key.Key_N)
    assert w.files.save_session(tmp_path / "other.json")  # another scene, saved elsewhere
    w.files.open_session(session)
    assert w.document.state == saved and w.document.undo_stack.count() == 0  # history starts over
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.document.state == saved
    qtbot.keyClick(w, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert load_session(session)[0] == saved  # the file still holds its own scene


def test_a_session_opened_while_a_checkpoint_loads_is_not_overtaken_by_it(qtbot, make_window, tiny_checkpoints,
                                                                          tmp_path):
    rooms, _ = tiny_checkpoints["rooms"]
    figures, _ = tiny_checkpoints["figures"]
    session = tmp_path / "rooms-scene.json"
    w, saved = window_with_a_saved_session(qtbot, make_window, rooms, session)
    w.files.open_checkpoint(figures)  # Open Bundled Model: loading...
    w.files.open_session(session)  # ...and meanwhile a recent session made with the open generator
    qtbot.waitUntil(lambda: not w.files.loading, timeout=20000)
    wait_for_current_frame(qtbot, w)
    assert w.document.info.path == str(rooms) and w.document.state == saved
    assert w.files.session_path == str(session)


def test_a_session_whose_checkpoint_changed_opens_and_says_so(qtbot, make_window, tiny_checkpoints, tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    shutil.copy(tiny_checkpoints["rooms"][0], checkpoint)
    w = make_window(checkpoint)
    saved = w.document.state
    session = tmp_path / "scene.json"
    assert w.files.save_session(session)
    torch.manual_seed(1)  # retrained since: the same architecture, other weights
    save_checkpoint(checkpoint, Generator(architecture("tiny-rooms")), {"name": "retrained"}, dtype=torch.float32)
    w2 = make_window(arch="tiny-plain")
    w2.files.open_session(session)
    qtbot.waitUntil(lambda: w2.document.state == saved, timeout=20000)
    title, message = w2.last_error
    assert title == "Checkpoint changed since the session was saved"
    assert "scene.json" in message and "model.safetensors" in message and "has changed" in message
    for box in w2.findChildren(QMessageBox):
        box.close()


def test_the_seed_arrows_draw_the_seed_they_show(qtbot, make_window, tiny_checkpoints):
    w = make_window(tiny_checkpoints["rooms"][0])
    box = w.sample_panel.seed
    seed = box.value()
    box.setFocus()
    qtbot.keyClick(box, Qt.Key.Key_Up)  # an arrow's step, as the up button makes
    assert box.value() == seed + 1 and w.document.state.seed == seed + 1
    assert w.document.undo_stack.undoText() == f"New sample (seed {seed + 1})"


def test_a_close_whose_save_fails_keeps_the_window_and_says_why(qtbot, make_window, tiny_checkpoints, monkeypatch):
    w = make_window(tiny_checkpoints["rooms"][0])
    qtbot.keyClick(w, Qt.Key.Key_N)  # an unsaved edit

    def failing_save(path=None):
        raise RuntimeError("the share went away")

    monkeypatch.setattr(w.files, "save_session", failing_save)
    answered = answer_modal_dialog(qtbot, lambda box: box.button(QMessageBox.StandardButton.Save).click())
    w.close()
    assert answered() and w.isVisible() and w.isWindowModified()
    assert w.last_error[0] == "Cannot close" and "the share went away" in w.last_error[1]
    for box in w.findChildren(QMessageBox):
        box.close()


def test_a_fit_file_that_cannot_be_looked_for_is_said_not_raised(tmp_path, monkeypatch):
    def stale(sha256, near=None):
        raise OSError(errno.ESTALE, "Stale file handle", str(near))

    monkeypatch.setattr("models.io.fit_file.find_fit", stale)
    problem = copy_fit_beside("ab" * 32, tmp_path / "scene.json", tmp_path / "old" / "scene.json")
    assert problem is not None and "Stale file handle" in problem and "old" in problem


def test_save_as_without_a_suffix_saves_a_session_that_opens_as_one(qtbot, make_window, tiny_checkpoints, tmp_path,
                                                                     monkeypatch):
    w = make_window(tiny_checkpoints["rooms"][0])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "myscene"), ""))
    assert w.files.ask_save_session()
    assert (tmp_path / "myscene.json").is_file() and not (tmp_path / "myscene").exists()
    assert load_session(tmp_path / "myscene.json")[0] == w.document.state
