"""The studio's log (app/logs.py): a failure keeps its traceback in steergan.log while the
user sees the short message; -v adds stderr; a log folder that cannot be written is no
reason not to start."""
import logging
import os
import subprocess
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest
from test_app_helpers import render_failing_once, wait_for_current_frame

from app.logs import FILE_NAME, LOGGER, configure_logging, log_folder, remove_handlers
from app.render_worker import RenderWorker

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def no_handlers_left():
    yield
    remove_handlers()  # the next test's logging is its own


def our_handlers():
    return [h for h in logging.getLogger(LOGGER).handlers if not isinstance(h, logging.NullHandler)]


def test_a_render_failure_keeps_its_traceback_in_the_log_and_the_status_bar_its_message(
        qtbot, make_window, tiny_checkpoints, studio_env):
    path = configure_logging()
    assert path == studio_env / "logs" / FILE_NAME  # studio_env's STEERGAN_LOG_DIR
    [handler] = our_handlers()
    assert isinstance(handler, RotatingFileHandler)
    assert (handler.maxBytes, handler.backupCount) == (1 << 20, 3)
    w = make_window(tiny_checkpoints["rooms"][0], worker=RenderWorker(device="cpu", render_fn=render_failing_once()))
    w.document.new_sample(11)
    qtbot.waitUntil(lambda: "injected failure" in w.statusBar().currentMessage(), timeout=20000)
    assert w.statusBar().currentMessage() == "Render failed: injected failure"  # as short as before
    handler.flush()
    text = path.read_text()
    assert "ERROR steergan.worker" in text and "render" in text and "failed" in text
    assert "Traceback (most recent call last)" in text and "RuntimeError: injected failure" in text
    assert "fails_once" in text  # the frame that raised, not just the message
    w.document.new_sample(12)  # the worker lives on
    wait_for_current_frame(qtbot, w)


def test_a_load_failure_keeps_its_traceback_in_the_log(qtbot, studio_env, monkeypatch):
    import models.io.library
    from app.render_worker import start_worker, stop_worker

    def broken_open(*args, **kwargs):
        raise KeyError("injected bug")

    monkeypatch.setattr(models.io.library, "open_generator", broken_open)
    path = configure_logging()
    worker = RenderWorker(device="cpu")
    thread = start_worker(worker)
    with qtbot.waitSignal(worker.loadFailed, timeout=20000) as failed:
        worker.load(1, None, "tiny-plain")
    stop_worker(worker, thread)
    assert failed.args == [1, "tiny-plain: KeyError: 'injected bug'"]  # the message the dialog shows
    text = path.read_text()
    assert "loading tiny-plain failed" in text and "Traceback" in text and "KeyError: 'injected bug'" in text


def test_verbose_adds_a_stderr_handler(tmp_path, capsys):
    configure_logging(folder=tmp_path)
    assert not any(type(h) is logging.StreamHandler for h in our_handlers())
    configure_logging(verbose=True, folder=tmp_path)  # configuring again replaces, never duplicates
    assert sorted(type(h).__name__ for h in our_handlers()) == ["LogFile", "StreamHandler"]  # LogFile: rotating
    try:
        raise ValueError("seen on stderr")
    except ValueError:
        logging.getLogger("steergan.worker").exception("a job failed")
    err = capsys.readouterr().err
    assert "a job failed" in err and "Traceback" in err and "ValueError: seen on stderr" in err


def test_the_command_line_takes_verbose():
    from app.studio import build_parser

    assert build_parser().parse_args(["-v"]).verbose and build_parser().parse_args(["--verbose"]).verbose
    assert not build_parser().parse_args([]).verbose
    assert "--verbose" in build_parser().format_help()  # what `steergan --help` prints


@pytest.mark.parametrize("how", ["env", "argument"])
def test_an_unwritable_log_folder_does_not_stop_configuring(tmp_path, capsys, monkeypatch, how):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = blocker / "logs"  # cannot be made, not even by root
    if how == "env":
        monkeypatch.setenv("STEERGAN_LOG_DIR", str(folder))
    assert configure_logging(verbose=False, folder=None if how == "env" else folder) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no log file" in err and str(folder) in err  # said once
    try:
        raise RuntimeError("nowhere to go")
    except RuntimeError:
        logging.getLogger("steergan.worker").exception("a job failed")  # no file: not an error of its own
    assert capsys.readouterr().err == ""
    assert configure_logging(verbose=True, folder=folder) is None  # -v still works without a file
    assert [type(h).__name__ for h in our_handlers()] == ["StreamHandler"]


def test_the_log_lives_where_the_autosave_does_unless_moved(monkeypatch, tmp_path):
    from app.autosave import autosave_folder

    monkeypatch.delenv("STEERGAN_LOG_DIR")
    monkeypatch.delenv("STEERGAN_AUTOSAVE_DIR", raising=False)
    assert log_folder() == autosave_folder()
    monkeypatch.setenv("STEERGAN_LOG_DIR", str(tmp_path))
    assert log_folder() == tmp_path


def test_the_studio_configures_the_log_at_start(tmp_path):
    """`steergan -v --screenshot`: the run's start is in the file and, with -v, on stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen",
           "STEERGAN_LOG_DIR": str(tmp_path / "logs"), "STEERGAN_AUTOSAVE_DIR": str(tmp_path / "autosave"),
           "STEERGAN_DEVICE": "cpu", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-m", "app.cli", "-v", "--arch", "tiny-plain", "--screenshot",
                          str(tmp_path / "shot.png")], env=env, capture_output=True, text=True, timeout=300,
                         cwd=REPO, check=False)
    assert run.returncode == 0, run.stderr
    assert "INFO steergan.studio" in run.stderr and "started" in run.stderr
    assert "started (pid" in (tmp_path / "logs" / FILE_NAME).read_text()


def test_uncaught_exceptions_reach_the_log_then_the_usual_hook(tmp_path, monkeypatch):
    import threading

    reported = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc: reported.append(exc[0]))
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(args.exc_type))
    path = configure_logging(folder=tmp_path)
    configure_logging(folder=tmp_path)  # configuring again does not log twice
    try:
        raise KeyError("from a slot")
    except KeyError:
        sys.excepthook(*sys.exc_info())  # what PySide does with an exception a slot raised
    worker = threading.Thread(target=lambda: 1 / 0, name="ahead")
    worker.start()
    worker.join()
    remove_handlers()
    text = path.read_text()
    assert text.count("uncaught KeyError") == 1 and "KeyError: 'from a slot'" in text
    assert "uncaught ZeroDivisionError in thread ahead" in text and "Traceback" in text
    assert reported == [KeyError, ZeroDivisionError]  # and the usual hooks still ran
