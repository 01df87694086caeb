"""Issue 25, item 6: autosave and recovery. One autosave per studio; an autosave is offered
back only when its studio is no longer running (a PID reused by another process does not
hide it); recovery takes only a regular file of a session's size and never follows a link."""
import os
import subprocess
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from test_app_helpers import WAIT_MS

from app.autosave import Autosaver
from app.document import Document
from models.document.scene import initial_state
from models.document.session import MAX_SESSION_BYTES, CheckpointRef, load_session, save_session

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


@pytest.fixture
def folder(studio_env):
    """The autosave folder the studio fixtures point the windows at."""
    path = studio_env / "autosave"
    path.mkdir(exist_ok=True)
    return path


def gone_studio(number: int = 0):
    """A studio that no longer runs: this PID, but an earlier process (PIDs are reused)."""
    from app.autosave import THIS_PROCESS_STARTED, Studio

    return Studio(os.getpid(), THIS_PROCESS_STARTED + 1 + number, number)


def scene(tiny_checkpoints, seed: int):
    path, g = tiny_checkpoints["rooms"]
    return initial_state(g.config, seed), CheckpointRef(str(path), None)


def plant_autosave(folder, studio, tiny_checkpoints, seed: int, kind: str = "autosave"):
    """The autosave (or taken-over scene) `studio` left; returns its scene."""
    state, ref = scene(tiny_checkpoints, seed)
    save_session(folder / f"{kind}-{studio.tag}.json", state, ref)
    return state


def restore_by_clicking_yes(qtbot, window, recovered):
    from app.studio import offer_restore

    offer_restore(window, recovered)
    yes = window.restore_prompt.button(QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(yes, Qt.MouseButton.LeftButton)


def press_n(qtbot, window, times: int):
    for _ in range(times):  # five edits: autosaved without waiting for the timer
        qtbot.keyClick(window, Qt.Key.Key_N)


# ---- one autosave per studio ------------------------------------------------------------

def test_two_studios_at_once_keep_their_own_autosaves(qtbot, make_window, tiny_checkpoints, folder):
    path, _ = tiny_checkpoints["rooms"]
    first = make_window(path)
    assert first.autosaver.start() is None
    press_n(qtbot, first, 5)
    second = make_window(path)
    assert second.autosaver.start() is None, "a running studio's autosave is no crash's"
    press_n(qtbot, second, 5)
    assert first.autosaver.path != second.autosaver.path
    assert load_session(first.autosaver.path)[0] == first.document.state
    assert load_session(second.autosaver.path)[0] == second.document.state != first.document.state

    # The first "crashes" (stops without its clean exit); the second still runs. A studio
    # starting now is offered the first one's scene, not the second's.
    first.autosaver.active = False
    third = make_window(path)
    recovered = third.autosaver.start()
    assert recovered is not None and load_session(recovered)[0] == first.document.state
    restore_by_clicking_yes(qtbot, third, recovered)
    qtbot.waitUntil(lambda: third.document.state == first.document.state, timeout=WAIT_MS)
    assert load_session(second.autosaver.path)[0] == second.document.state  # untouched


def test_a_reused_pid_does_not_hide_the_autosave(qtbot, make_window, tiny_checkpoints, folder):
    """The crashed studio's PID now belongs to another live process (`sleep`): told apart by
    its start time. A studio that really runs under that PID keeps its autosave."""
    from app.autosave import Studio, process_start_time

    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        started = process_start_time(sleeper.pid)
        assert started
        crashed = plant_autosave(folder, Studio(sleeper.pid, started - 1, 0), tiny_checkpoints, seed=7)
        running = Studio(sleeper.pid, started, 1)
        plant_autosave(folder, running, tiny_checkpoints, seed=8)
        w = make_window(tiny_checkpoints["rooms"][0])
        recovered = w.autosaver.start()
        assert recovered is not None and load_session(recovered)[0] == crashed
        assert (folder / f"autosave-{running.tag}.json").exists()  # a running studio's: left alone
        restore_by_clicking_yes(qtbot, w, recovered)
        qtbot.waitUntil(lambda: w.document.state == crashed, timeout=WAIT_MS)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_crashes_are_offered_newest_first_one_per_start(qapp, tiny_checkpoints, folder):
    older = plant_autosave(folder, gone_studio(0), tiny_checkpoints, seed=1)
    newer = plant_autosave(folder, gone_studio(1), tiny_checkpoints, seed=2)
    old_time = time.time() - 60
    os.utime(folder / f"autosave-{gone_studio(0).tag}.json", (old_time, old_time))
    starts = [Autosaver(Document(), folder) for _ in range(3)]
    offered = [s.start() for s in starts]
    assert [load_session(p)[0] for p in offered[:2]] == [newer, older] and offered[2] is None


def test_a_taken_over_scene_survives_a_second_crash(qapp, tiny_checkpoints, folder):
    crashed = plant_autosave(folder, gone_studio(), tiny_checkpoints, seed=3)
    first = Autosaver(Document(), folder)
    assert load_session(first.start())[0] == crashed
    first.active = False  # it crashes too, before its first autosave
    second = Autosaver(Document(), folder)
    assert load_session(second.start())[0] == crashed
    assert [p.name for p in folder.iterdir()] == [second.recovered.name]


# ---- only regular files of a session's size, never through a link -----------------------

def crash_after_autosaving(qtbot, window):
    """A studio that autosaved, then crashed (stopped without its clean exit)."""
    window.autosaver.start()
    press_n(qtbot, window, 5)
    assert window.autosaver.path.exists()
    window.autosaver.active = False


def theirs(tmp_path, tiny_checkpoints):
    """Someone's session, outside the autosave folder: (its path, its bytes)."""
    path = tmp_path / "theirs.json"
    state, ref = scene(tiny_checkpoints, 5)
    save_session(path, state, ref)
    return path, path.read_bytes()


@pytest.mark.parametrize("kind", ["link to someone's session", "too large"])
def test_a_crashed_studios_autosave_must_be_a_regular_file_of_a_sessions_size(
        qtbot, make_window, tiny_checkpoints, tmp_path, kind):
    path, _ = tiny_checkpoints["rooms"]
    crashed = make_window(path)
    crash_after_autosaving(qtbot, crashed)
    their_file, their_bytes = theirs(tmp_path, tiny_checkpoints)
    crashed.autosaver.path.unlink()
    if kind == "too large":
        with open(crashed.autosaver.path, "wb") as f:
            f.truncate(MAX_SESSION_BYTES + 1)  # sparse: no disk used
    else:
        crashed.autosaver.path.symlink_to(their_file)
    w = make_window(path)
    assert w.autosaver.start() is None
    assert not w.autosaver.recovered.exists()
    assert their_file.read_bytes() == their_bytes  # left alone, where it is


@pytest.mark.parametrize("kind", ["link to /dev/zero", "FIFO", "folder"])
def test_recovery_never_reads_a_link_a_fifo_or_a_folder(qapp, folder, kind):
    autosave = folder / f"autosave-{gone_studio().tag}.json"
    if kind == "link to /dev/zero":
        autosave.symlink_to("/dev/zero")  # copied, it filled the disk before any window showed
    elif kind == "FIFO":
        os.mkfifo(autosave)
    else:
        autosave.mkdir()
    autosaver = Autosaver(Document(), folder)
    began = time.monotonic()
    assert autosaver.start() is None
    assert time.monotonic() - began < 5  # nothing read, nothing waited on
    assert not autosaver.recovered.exists() and not autosaver.recovered.is_symlink()
    assert sum(p.lstat().st_size for p in folder.iterdir() if p.is_file() and not p.is_symlink()) == 0


def test_a_linked_recovered_file_keeps_its_target(qtbot, make_window, tiny_checkpoints, tmp_path):
    path, _ = tiny_checkpoints["rooms"]
    crashed = make_window(path)
    crash_after_autosaving(qtbot, crashed)
    w = make_window(path)
    victim, before = theirs(tmp_path, tiny_checkpoints)
    w.autosaver.recovered.symlink_to(victim)  # planted where the crashed scene will go
    recovered = w.autosaver.start()
    assert recovered == w.autosaver.recovered and not recovered.is_symlink()
    assert load_session(recovered)[0] == crashed.document.state
    assert victim.read_bytes() == before


def test_an_autosave_name_linked_elsewhere_is_not_written_through(qtbot, make_window, tiny_checkpoints, tmp_path):
    w = make_window(tiny_checkpoints["rooms"][0])
    victim, before = theirs(tmp_path, tiny_checkpoints)
    w.autosaver.folder.mkdir(parents=True, exist_ok=True)
    w.autosaver.path.symlink_to(victim)
    w.autosaver.start()
    press_n(qtbot, w, 5)
    assert "symbolic link" in w.autosaver.error
    assert victim.read_bytes() == before
