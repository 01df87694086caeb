"""Audit of the studio's start and its background machinery: what a new user's machine can
throw at them (a folder that cannot be written, a device variable the machine cannot honour,
a crashed scene whose checkpoint is gone, a file name that is not UTF-8)."""
import logging
import os
import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from test_app_helpers import WAIT_MS, wait_for_current_frame

from app.autosave import THIS_PROCESS_STARTED, Autosaver, Studio
from app.document import Document
from app.logs import configure_logging, remove_handlers
from models.document.scene import initial_state
from models.document.session import CheckpointRef, load_session, save_session

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


def errors_of(window) -> list[tuple[str, str]]:
    """The error dialogs the window opens from now on: (title, message)."""
    errors: list[tuple[str, str]] = []
    window.errorShown.connect(lambda title, message: errors.append((title, message)))
    return errors


def edit(window, times: int = 5) -> None:
    """New samples, through the document (an error dialog is window-modal: keys would not
    reach the window). Five edits are autosaved without waiting for the timer."""
    for _ in range(times):
        assert window.document.new_sample()


# ---- an autosave that cannot be written is said, once ------------------------------------

def test_an_autosave_folder_that_cannot_be_made_is_said(qtbot, make_window, tiny_checkpoints, studio_env):
    """A file where the data folder should be (or a read-only home): autosave cannot work.
    It had failed silently, and the user went on trusting it with the edits."""
    folder = studio_env / "autosave"
    folder.write_text("a file where the autosave folder should be")
    w = make_window(tiny_checkpoints["rooms"][0])
    errors = errors_of(w)
    assert w.autosaver.start() is None
    assert len(errors) == 1
    title, message = errors[0]
    assert "Autosave" in title and str(folder) in message and "save the session" in message
    edit(w)  # it stays off, and is not said again for every edit
    assert len(errors) == 1


def test_an_autosave_that_stops_working_is_said_once_until_it_works_again(qtbot, make_window,
                                                                           tiny_checkpoints, studio_env):
    w = make_window(tiny_checkpoints["rooms"][0])
    errors = errors_of(w)
    assert w.autosaver.start() is None
    edit(w)
    assert w.autosaver.path.exists() and errors == []
    folder = w.autosaver.folder
    shutil.rmtree(folder)
    folder.write_text("the folder is gone (a drive unplugged, a disk full)")
    edit(w)
    assert len(errors) == 1 and str(w.autosaver.path) in errors[0][1]
    edit(w)
    assert len(errors) == 1  # once, not once every five edits
    folder.unlink()
    edit(w, 1)  # works again: the first edit saves (the save makes the folder)
    assert w.autosaver.error is None and load_session(w.autosaver.path)[0] == w.document.state
    shutil.rmtree(folder)
    folder.write_text("and fails again")
    edit(w)
    assert len(errors) == 2  # a new failure after a good save is said again


# ---- a restore that fails keeps the crashed scene ------------------------------------------

def plant_crash(folder, checkpoint, seed: int):
    """The autosave a studio that no longer runs left (this PID, an earlier process)."""
    folder.mkdir(parents=True, exist_ok=True)
    studio = Studio(os.getpid(), THIS_PROCESS_STARTED + 1, 0)
    from models.io.library import open_generator

    state = initial_state(open_generator(checkpoint).generator.config, seed)
    save_session(folder / f"autosave-{studio.tag}.json", state, CheckpointRef(str(checkpoint), None))
    return state


@pytest.mark.parametrize("how", ["checkpoint gone", "checkpoint damaged"])
def test_a_restore_that_fails_keeps_the_scene_for_the_next_start(qtbot, make_window, tiny_checkpoints,
                                                                  studio_env, how):
    """The crashed scene's checkpoint is on a drive not mounted now (or was overwritten by a
    broken copy): Yes fails, and the clean exit had deleted the scene for good."""
    from app.studio import offer_restore

    checkpoint = studio_env / "elsewhere" / "mine.safetensors"
    checkpoint.parent.mkdir()
    shutil.copy(tiny_checkpoints["rooms"][0], checkpoint)
    crashed = plant_crash(studio_env / "autosave", checkpoint, seed=9)
    if how == "checkpoint gone":
        checkpoint.unlink()
    else:
        checkpoint.write_bytes(b"not a checkpoint any more")
    w = make_window(tiny_checkpoints["plain"][0])
    errors = errors_of(w)
    recovered = w.autosaver.start()
    assert recovered is not None
    offer_restore(w, recovered)
    qtbot.mouseClick(w.restore_prompt.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(errors), timeout=WAIT_MS)
    assert str(checkpoint.name) in errors[0][1] and "kept" in errors[0][1]
    w.close()  # a clean exit: nothing unsaved (the restore did not happen)
    assert not w.isVisible()

    offered = Autosaver(Document(), studio_env / "autosave").start()
    assert offered is not None and load_session(offered)[0] == crashed


@pytest.mark.parametrize("answer", ["No", "Yes"])
def test_a_scene_declined_or_restored_is_gone_after_a_clean_exit(qtbot, make_window, tiny_checkpoints, studio_env,
                                                                answer):
    from app.studio import offer_restore

    path = tiny_checkpoints["rooms"][0]
    crashed = plant_crash(studio_env / "autosave", path, seed=4)
    w = make_window(path)
    recovered = w.autosaver.start()
    offer_restore(w, recovered)
    button = QMessageBox.StandardButton.Yes if answer == "Yes" else QMessageBox.StandardButton.No
    qtbot.mouseClick(w.restore_prompt.button(button), Qt.MouseButton.LeftButton)
    if answer == "Yes":
        qtbot.waitUntil(lambda: w.document.state == crashed, timeout=WAIT_MS)
        w.document.undo_stack.setClean()  # the user saved it elsewhere (or discards it at the question)
    w.close()
    assert os.listdir(studio_env / "autosave") == []
    assert Autosaver(Document(), studio_env / "autosave").start() is None


# ---- STEERGAN_DEVICE that this machine cannot honour -----------------------------------------

@pytest.mark.parametrize("value", ["gpu", "cuda:99"])
def test_a_device_the_machine_lacks_renders_on_the_cpu_and_says_why(qtbot, make_window, tiny_checkpoints,
                                                                     monkeypatch, value):
    """`STEERGAN_DEVICE=cuda` left in a shell profile on a machine without a GPU (or a typo):
    every open failed, each blaming the checkpoint file, and the studio stayed empty."""
    monkeypatch.setenv("STEERGAN_DEVICE", value)
    w = make_window()
    errors = errors_of(w)
    w.files.open_checkpoint(tiny_checkpoints["rooms"][0])
    qtbot.waitUntil(lambda: w.document.info is not None or bool(errors), timeout=WAIT_MS)
    assert errors == []
    wait_for_current_frame(qtbot, w)
    assert w.worker.device.type == "cpu"
    label = w.device_label.text()
    assert label.startswith("CPU (") and f"STEERGAN_DEVICE={value}" in label.replace("'", "")


# ---- the log keeps records that name a file whose name is not UTF-8 --------------------------

def test_a_file_name_that_is_not_utf8_does_not_lose_the_log_record(tmp_path, capsys):
    """Python holds such a name's bytes as lone surrogates: writing them to the UTF-8 log
    raised, and the record (the traceback the user is told is in the log) was lost."""
    name = os.fsdecode(b"/home/user/sc\xe8ne.safetensors")  # Latin-1 bytes, as an old USB stick has them
    path = configure_logging(folder=tmp_path)
    try:
        try:
            raise RuntimeError(f"{name}: cannot be read")
        except RuntimeError:
            logging.getLogger("steergan.worker").exception("loading %s failed", name)
        logging.getLogger("steergan.worker").error("the next record")
    finally:
        remove_handlers()
    text = path.read_text(encoding="utf-8")
    assert "loading /home/user/sc\\udce8ne.safetensors failed" in text
    assert "RuntimeError: /home/user/sc\\udce8ne.safetensors: cannot be read" in text
    assert "the next record" in text
    assert "Logging error" not in capsys.readouterr().err
