"""Issue 25, item 5 (the smaller findings): Export Video starts at the playhead; every
command-line argument says what it is; History names a drag by where it ended; the log is
never a FIFO, a device or a link, and a rotation blocked by a folder is said once."""
import argparse
import logging
import os
import threading

import pytest
from PySide6.QtCore import QPoint, Qt
from test_app_helpers import WAIT_MS, drag, wait_for_current_frame, widget_point

import app.logs
from app.logs import FILE_NAME, LOGGER, MAX_BYTES, configure_logging, remove_handlers

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


@pytest.fixture(autouse=True)
def no_handlers_left():
    yield
    remove_handlers()  # the next test's logging is its own


# ---- Export Video starts at the playhead ------------------------------------------------

def set_spin(qtbot, spin, text: str):
    """Type a value into a spin box as a user does (Tab, not Enter: Enter would export)."""
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Tab)


def test_export_video_starts_at_the_playhead(qtbot, make_window, tiny_checkpoints, tmp_path, monkeypatch):
    w = make_window(tiny_checkpoints["clips"][0])
    w.timeline.fps.setFocus()
    qtbot.keyClick(w.timeline.fps, Qt.Key.Key_Up)  # 25 -> 24 fps: 1/24 s has no 2-decimal form
    assert w.playback.fps == 24
    for _ in range(5):
        qtbot.keyClick(w, Qt.Key.Key_Right)
    playhead = w.document.state.time
    assert playhead == 5 / 24
    jobs = []
    export_video = w.worker.export_video
    monkeypatch.setattr(w.worker, "export_video", lambda *args: (jobs.append(args[1]), export_video(*args))[1])

    qtbot.keyClick(w, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = w.video_exporter.dialog
    assert dialog.isVisible() and dialog.start.value() == 0.21  # what the box shows
    dialog.path.setFocus()
    qtbot.keyClick(dialog.path, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(dialog.path, str(tmp_path / "from-here.gif"))
    set_spin(qtbot, dialog.length, "0.125")
    set_spin(qtbot, dialog.start, "1.5")  # a start the user types is the start
    assert dialog.job(w.document.state).start == 1.5
    set_spin(qtbot, dialog.start, "0.21")  # typed back: the playhead again, exactly
    with qtbot.waitSignal(w.video_exporter.finished, timeout=WAIT_MS) as done:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert done.args[1] == "written"
    assert jobs[0].start == playhead  # exactly: the first frame is the one on the canvas


# ---- the command line's help ----------------------------------------------------------

def every_argument(parser, command=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_argument(sub, (*command, name))
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(command), action


def test_every_argument_of_every_subcommand_has_help():
    from app.cli import build_parser

    silent = [f"{command} {action.option_strings or action.dest}" for command, action in every_argument(build_parser())
              if not action.help]
    assert silent == []
    help_text = next(a for c, a in every_argument(build_parser()) if c == "bench" and a.dest == "repeats").help
    assert "20" in help_text  # the default is named


def test_bench_help_shows_what_repeats_means(capsys):
    from app.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--repeats REPEATS renders timed per architecture" in out


# ---- History names a drag by where it ended -------------------------------------------

def history_texts(w):
    model = w.history.model()
    return [model.index(row, 0).data() for row in range(1, model.rowCount())]  # row 0: "<empty>"


def test_history_names_a_drag_by_where_it_ended(qtbot, make_window, tiny_checkpoints):
    w = make_window(tiny_checkpoints["rooms"][0])
    x, y = w.document.state.objects[0].center
    drag(qtbot, w.canvas, widget_point(w.canvas, x, y), widget_point(w.canvas, x + 0.2, y - 0.15))
    ended = w.document.state.objects[0].center
    assert w.document.undo_stack.count() == 1
    assert history_texts(w) == [f"Move object 1 to ({ended[0]:.2f}, {ended[1]:.2f})"]
    assert ended != pytest.approx((x, y), abs=0.05)  # the end, not where the drag began

    obj = w.document.state.objects[1]  # the sigma ring: named by the size it ended at
    scale = w.canvas.pixels_per_unit()
    center = widget_point(w.canvas, *obj.center)
    ring = QPoint(center.x() + round(obj.sigma * scale), center.y())
    drag(qtbot, w.canvas, ring, QPoint(center.x() + round(0.2 * scale), center.y()))
    assert history_texts(w)[1] == f"Size of object 2 to {w.document.state.objects[1].sigma:.2f}"
    wait_for_current_frame(qtbot, w)


def test_history_names_a_figure_drag_by_where_it_ended(qtbot, make_window, tiny_checkpoints):
    w = make_window(tiny_checkpoints["figures"][0])
    root = w.document.state.hierarchy_centers()[0][0]
    start = widget_point(w.canvas, *root)
    drag(qtbot, w.canvas, start, start + QPoint(-40, 30))
    ended = w.document.state.hierarchy_centers()[0][0]
    assert history_texts(w) == [f"Move figure to ({ended[0]:.2f}, {ended[1]:.2f})"]


# ---- the log file: only a regular file, never waited on, never through a link ----------

def configure_in_a_thread(folder):
    """configure_logging(folder) on a thread, so that a hang fails the test instead of
    stopping it. Returns (the thread, what it returned)."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("path", configure_logging(folder=folder)),
                              daemon=True)
    thread.start()
    thread.join(20)
    return thread, result


@pytest.mark.parametrize("reader", [False, True], ids=["no reader", "a reader"])
def test_a_fifo_as_the_log_is_refused_at_once(tmp_path, capsys, reader):
    fifo = tmp_path / FILE_NAME
    os.mkfifo(fifo)
    reading = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK) if reader else None
    try:
        thread, result = configure_in_a_thread(tmp_path)
        if thread.is_alive():  # the old code waits in open() for a reader: give it one, then fail
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        assert not thread.is_alive(), "configuring the log waited on a FIFO"
        assert result["path"] is None
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no log file" in err and "not a regular file" in err
        logging.getLogger("steergan.worker").error("nowhere to go")
        if reading is not None:
            assert os.read(reading, 100) == b""  # no writer ever: nothing went into the pipe
    finally:
        if reading is not None:
            os.close(reading)


@pytest.mark.parametrize("target_exists", [True, False], ids=["a file", "a missing file"])
def test_a_symlink_as_the_log_is_not_followed(tmp_path, capsys, target_exists):
    victim = tmp_path / "someone-elses.txt"
    if target_exists:
        victim.write_text("keep me\n")
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / FILE_NAME).symlink_to(victim)
    assert configure_logging(folder=folder) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "symbolic link" in err
    logging.getLogger("steergan.worker").error("a failure that must not land in someone else's file")
    remove_handlers()
    if target_exists:
        assert victim.read_text() == "keep me\n"
    else:
        assert not victim.exists()  # not created through the link either
    assert (folder / FILE_NAME).is_symlink()


def test_a_regular_log_still_appends_and_rotates(tmp_path):
    path = configure_logging(folder=tmp_path)
    [handler] = [h for h in logging.getLogger(LOGGER).handlers if not isinstance(h, logging.NullHandler)]
    handler.maxBytes = 2000
    for i in range(100):
        logging.getLogger("steergan.worker").error("failure %03d", i)
    remove_handlers()
    assert "failure 099" in path.read_text() and path.stat().st_size <= 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME] + [f"{FILE_NAME}.{n}" for n in (1, 2, 3)]


@pytest.mark.parametrize("folder_at", [1, 3])
def test_a_rotation_blocked_by_a_folder_is_said_once(tmp_path, capsys, monkeypatch, folder_at):
    """A folder named steergan.log.N: the rotation that would remove it fails. Said once;
    the log carries on unrotated, up to the space the rotated files would have had."""
    monkeypatch.setattr(app.logs, "UNROTATED_MAX_BYTES", 8000, raising=False)
    for n in (1, 2, 3):
        if n == folder_at:
            (tmp_path / f"{FILE_NAME}.{n}").mkdir()
            (tmp_path / f"{FILE_NAME}.{n}" / "inside").write_text("a folder that is not empty")
        else:
            (tmp_path / f"{FILE_NAME}.{n}").write_text(f"older log {n}\n")
    path = configure_logging(folder=tmp_path)
    [handler] = [h for h in logging.getLogger(LOGGER).handlers if not isinstance(h, logging.NullHandler)]
    handler.maxBytes = 2000  # rotations every few records (MAX_BYTES in the studio)
    assert handler.maxBytes < MAX_BYTES
    for i in range(300):
        logging.getLogger("steergan.worker").error("failure %03d", i)
    remove_handlers()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and "cannot rotate the log" in err and str(path) in err
    size = path.stat().st_size
    assert 2000 < size <= 8000 + 200  # it carried on past the rotation, and stopped at the cap
    assert (tmp_path / f"{FILE_NAME}.3").is_dir() or (tmp_path / f"{FILE_NAME}.{folder_at}").is_dir()
