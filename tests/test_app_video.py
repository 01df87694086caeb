"""Video in the studio: the timeline, playback rendered ahead by the worker, edits on every
frame, and Export Video with progress, cancel and atomic files, on the real window."""
import os
import threading
from dataclasses import replace

import imageio.v2 as iio
import imageio.v3 as iio3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QPushButton
from test_app_helpers import WAIT_MS, drag, shown_image, wait_for_current_frame, widget_point

from app.render_worker import RenderWorker, default_render
from models.render import render

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


class CountingRender:
    """The worker's render function, counting what it renders (to see the cache at work)."""

    def __init__(self):
        self.states = []

    def __call__(self, generator, state):
        self.states.append(state)
        return default_render(generator, state)


@pytest.fixture
def out_dir(tmp_path):
    """An empty folder for exports (tmp_path also holds the test's settings)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def video_window(make_window, tiny_checkpoints):
    counting = CountingRender()
    path, g = tiny_checkpoints["clips"]
    w = make_window(path, worker=RenderWorker(device="cpu", render_fn=counting))
    w.counting = counting
    return w, g


class ShownFrames:
    """(state, image) of every frame the canvas shows, in order."""

    def __init__(self, window):
        self.items = []
        window.frameShown.connect(lambda _id: self.items.append((window.canvas.frame_state,
                                                                 shown_image(window).copy())))


def set_spin(qtbot, spin, text: str, confirm=Qt.Key.Key_Return):
    """Type a value into a spin box as a user does: select all, type, Enter (in a dialog,
    Enter would press its default button: Tab there)."""
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, confirm)


def index_of(w):
    return round(w.document.state.time * w.playback.fps)


def test_timeline_only_for_video_generators(qtbot, make_window, tiny_checkpoints):
    w = make_window(tiny_checkpoints["rooms"][0])
    assert not w.timeline.isVisible() and not w.act_play.isEnabled()
    assert not w.act_export_video.isEnabled()
    assert QKeySequence("Space") in w.act_new_sample.shortcuts()
    with qtbot.waitSignal(w.files.loadFinished, timeout=WAIT_MS):
        w.files.open_checkpoint(tiny_checkpoints["clips"][0])
    assert w.timeline.isVisible() and w.act_play.isEnabled() and w.act_export_video.isEnabled()
    assert QKeySequence("Space") in w.act_play.shortcuts()  # video: Space plays, as in any player
    assert QKeySequence("Space") not in w.act_new_sample.shortcuts()


def test_scrubbing_shows_the_frame_at_that_time_without_undo_steps(qtbot, video_window):
    w, g = video_window
    slider = w.timeline.slider
    n = w.playback.frame_count
    assert (slider.minimum(), slider.maximum()) == (0, n - 1) and n == 100  # 4 s at 25 fps
    qtbot.mouseClick(slider, Qt.MouseButton.LeftButton, pos=QPoint(round(slider.width() * 0.75),
                                                                    slider.height() // 2))
    i = index_of(w)
    assert abs(i - 0.75 * (n - 1)) <= 3, "a click jumps to the clicked frame"
    assert w.document.state.time == i / 25 and slider.value() == i
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), render(g, w.document.state).image)
    qtbot.keyClick(w, Qt.Key.Key_Right)
    assert index_of(w) == i + 1
    qtbot.keyClick(w, Qt.Key.Key_Left)
    qtbot.keyClick(w, Qt.Key.Key_Left)
    assert index_of(w) == i - 1
    qtbot.keyClick(w, Qt.Key.Key_Home)
    assert w.document.state.time == 0.0
    assert w.document.undo_stack.count() == 0 and w.document.undo_stack.isClean()  # the playhead is no edit
    assert "frame 1 of 100" in w.timeline.time_label.text()


def test_playback_shows_every_frame_in_order_and_loops(qtbot, video_window):
    w, g = video_window
    set_spin(qtbot, w.timeline.length, "0.4")
    n = w.playback.frame_count
    assert n == 10
    shown = ShownFrames(w)
    put, threads = w.playback.cache.put, set()
    w.playback.cache.put = lambda *a: (threads.add(threading.get_ident()), put(*a))
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert w.playback.playing and w.act_play.text() == "&Pause"
    # Two passes: the first rendered ahead by the worker, the second from the cache.
    qtbot.waitUntil(lambda: sum(1 for s, _ in shown.items if s.time == 0.0) >= 2, timeout=WAIT_MS)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert not w.playback.playing
    indices = [round(s.time * 25) for s, _ in shown.items]
    first = indices.index(0)
    assert indices[first:first + n + 1] == list(range(n)) + [0], "every frame once, in order, then again"
    for state, image in shown.items:
        assert np.array_equal(image, render(g, state).image)
    assert threads == {threading.get_ident()}, "frames rendered ahead reach the cache on the GUI thread only"
    renders = len(w.counting.states)
    for _ in range(n):  # a whole loop again, stepping: every frame comes from the cache
        qtbot.keyClick(w, Qt.Key.Key_Period)
    assert len(w.counting.states) == renders
    assert w.playback.cached_indices() == list(range(n))


def test_without_loop_playback_stops_at_the_last_frame(qtbot, video_window):
    w, _ = video_window
    set_spin(qtbot, w.timeline.length, "0.2")
    qtbot.keyClick(w, Qt.Key.Key_L)
    assert not w.playback.loop and not w.act_loop.isChecked()
    qtbot.keyClick(w, Qt.Key.Key_K)
    qtbot.waitUntil(lambda: not w.playback.playing, timeout=WAIT_MS)
    assert index_of(w) == w.playback.frame_count - 1 == 4
    qtbot.keyClick(w, Qt.Key.Key_K)  # play at the end starts over
    assert w.playback.playing and index_of(w) <= 1


def test_an_edit_during_playback_applies_to_every_frame(qtbot, video_window):
    w, g = video_window
    set_spin(qtbot, w.timeline.length, "0.32")
    n = w.playback.frame_count
    before = w.document.state
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: w.playback.cached_indices() == list(range(n)), timeout=WAIT_MS)
    x, y = before.objects[0].center
    drag(qtbot, w.canvas, widget_point(w.canvas, x, y), widget_point(w.canvas, x + 0.2, y - 0.15))
    edited = w.document.state
    assert edited.objects[0].center != before.objects[0].center and w.playback.playing
    assert w.document.undo_stack.count() == 1
    wait_for_current_frame(qtbot, w)  # frames of the drag's earlier positions may still land before this
    shown = ShownFrames(w)
    qtbot.waitUntil(lambda: len({round(s.time * 25) for s, _ in shown.items}) == n, timeout=WAIT_MS)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    for state, image in shown.items:  # after the drag: only frames of the edited scene, each right
        assert state.timeless() == edited.timeless()
        assert np.array_equal(image, render(g, state).image)
    moved_first = render(g, replace(edited, time=0.0)).image
    assert not np.array_equal(moved_first, render(g, replace(before, time=0.0)).image)
    # Undo brings the old scene back on every frame, and leaves the playhead where it is.
    t = w.document.state.time
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert w.document.state == replace(before, time=t)
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), render(g, w.document.state).image)


def test_frame_rate_change_keeps_the_moment_and_shares_frames(qtbot, video_window):
    w, g = video_window
    w.playback.go_to(10)  # t = 0.4 at 25 fps
    wait_for_current_frame(qtbot, w)
    at_04 = shown_image(w).copy()
    w.playback.go_to(5)  # t = 0.2
    wait_for_current_frame(qtbot, w)
    w.timeline.fps.setFocus()
    qtbot.keyClick(w.timeline.fps, Qt.Key.Key_Down)  # 25 -> 30 fps
    assert w.playback.fps == 30 and index_of(w) == 6 and w.document.state.time == 6 / 30
    assert "frame 7 of 120" in w.timeline.time_label.text()
    for _ in range(6):  # frames 7..12 at 30 fps: 7..11 are new, 12 is t = 0.4 again
        qtbot.keyClick(w, Qt.Key.Key_Right)
        wait_for_current_frame(qtbot, w)
    assert w.document.state.time == 12 / 30 == 10 / 25
    assert np.array_equal(shown_image(w), at_04)
    assert [s.time for s in w.counting.states].count(0.4) == 1, "the frame at 0.4 s was rendered once, at 25 fps"


def test_shortening_the_range_brings_the_playhead_inside(qtbot, video_window):
    w, g = video_window
    w.playback.go_to(80)
    set_spin(qtbot, w.timeline.length, "1")
    assert w.playback.frame_count == 25 and w.document.state.time == 24 / 25
    assert w.timeline.slider.value() == 24 and "frame 25 of 25" in w.timeline.time_label.text()
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), render(g, w.document.state).image)


def test_a_loop_longer_than_one_request_keeps_playing(qtbot, video_window, monkeypatch):
    import app.playback

    monkeypatch.setattr(app.playback, "AHEAD_FRAMES", 3)  # frames are asked for 3 at a time
    w, _ = video_window
    set_spin(qtbot, w.timeline.length, "0.4")
    shown = ShownFrames(w)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: sum(1 for s, _ in shown.items if s.time == 0.0) >= 2, timeout=WAIT_MS)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    indices = [round(s.time * 25) for s, _ in shown.items]
    first = indices.index(0)
    assert indices[first:first + 11] == list(range(10)) + [0]


class FailsAt(CountingRender):
    def __init__(self, bad_time):
        super().__init__()
        self.bad_time = bad_time

    def __call__(self, generator, state):
        if state.time == self.bad_time:
            raise RuntimeError("synthetic failure")
        return super().__call__(generator, state)


def test_a_frame_that_fails_to_render_stops_playback_and_says_why(qtbot, make_window, tiny_checkpoints):
    w = make_window(tiny_checkpoints["clips"][0], worker=RenderWorker(device="cpu", render_fn=FailsAt(6 / 25)))
    qtbot.keyClick(w, Qt.Key.Key_Space)
    with qtbot.waitSignal(w.errorShown, timeout=WAIT_MS) as error:
        pass
    title, message = error.args
    assert title == "Playback stopped" and "0.240 s" in message and "synthetic failure" in message
    assert not w.playback.playing and index_of(w) == 5  # the frames before it played


def test_a_drag_back_to_the_start_during_playback_is_no_edit(qtbot, video_window):
    w, _ = video_window
    qtbot.keyClick(w, Qt.Key.Key_Space)
    x, y = w.document.state.objects[0].center
    start = widget_point(w.canvas, x, y)
    vp = w.canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for dx in (10, 30, 50, 30, 10, 0):
        qtbot.mouseMove(vp, QPoint(start.x() + dx, start.y()))
        qtbot.wait(30)  # the playhead moves meanwhile
    # On a loaded machine the six short waits may pass before the first tick: wait for the
    # playhead itself (the mouse still held), not for a time.
    qtbot.waitUntil(lambda: w.document.state.time > 0, timeout=WAIT_MS)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=start)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert w.document.state.objects[0].center == (x, y) and w.document.state.time > 0
    assert w.document.undo_stack.count() == 0 and w.document.undo_stack.isClean()


def test_new_motion_is_an_undoable_edit(qtbot, video_window):
    w, g = video_window
    before = w.document.state
    qtbot.keyClick(w, Qt.Key.Key_Right)
    qtbot.keyClick(w, Qt.Key.Key_M)
    assert w.document.state.motion_seed != before.motion_seed
    assert w.document.undo_stack.undoText() == "New motion"
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), render(g, w.document.state).image)


def open_video_dialog(qtbot, w, path, seconds: str, fps_steps: int = 0):
    qtbot.keyClick(w, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = w.video_exporter.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.length.value() == w.playback.length_s and dialog.fps.currentData() == w.playback.fps
    dialog.path.setFocus()
    qtbot.keyClick(dialog.path, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(dialog.path, str(path))
    set_spin(qtbot, dialog.length, seconds, confirm=Qt.Key.Key_Tab)
    for _ in range(abs(fps_steps)):
        qtbot.keyClick(dialog.fps, Qt.Key.Key_Down if fps_steps > 0 else Qt.Key.Key_Up)
    assert dialog.isVisible()
    return dialog


@pytest.mark.parametrize("ext", ["mp4", "gif"])
def test_export_video_writes_the_requested_frames(qtbot, video_window, out_dir, ext):
    w, g = video_window
    path = out_dir / f"clip.{ext}"
    dialog = open_video_dialog(qtbot, w, path, "0.5", fps_steps=-1)  # 25 -> 24 fps
    dialog.size.setCurrentIndex(1)  # 64 x 64 (x2)
    assert dialog.frames_label.text() == "12 frames"
    with qtbot.waitSignal(w.video_exporter.finished, timeout=WAIT_MS) as done:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert done.args == [str(path), "written"]
    assert os.listdir(out_dir) == [path.name]  # no temporary file left beside it
    if ext == "mp4":
        reader = iio.get_reader(path, format="FFMPEG")
        got = np.stack([f for f in reader])
        assert reader.get_meta_data()["fps"] == 24
    else:
        got = iio3.imread(path, index=None)
        first = render(g, replace(w.document.state, time=0.0)).image
        assert np.abs(got[0, ::2, ::2].astype(int) - first).mean() < 12  # the scene's frame, upscaled
    assert got.shape[:3] == (12, 64, 64)
    assert w.video_exporter.progress is None and "Exported" in w.statusBar().currentMessage()


def test_cancelling_an_export_leaves_no_file_and_keeps_the_old_one(qtbot, video_window, out_dir):
    w, _ = video_window
    path = out_dir / "long.mp4"
    path.write_bytes(b"the user's earlier video")
    qtbot.keyClick(w, Qt.Key.Key_Space)
    dialog = open_video_dialog(qtbot, w, path, "600")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    # The file exists: the dialog asks beside its fields first, and nothing starts yet.
    assert dialog.isVisible() and "long.mp4 already exists" in dialog.error.text() and not w.video_exporter.running
    assert dialog.save_button.text() == "Replace"
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert not w.playback.playing  # playback pauses: the worker is the export's
    progress = w.video_exporter.progress
    qtbot.waitUntil(lambda: progress.value() >= 2, timeout=WAIT_MS)
    assert progress.isVisible() and progress.maximum() == 15000
    cancel = next(b for b in progress.findChildren(QPushButton) if b.text() == "Cancel")
    with qtbot.waitSignal(w.video_exporter.finished, timeout=WAIT_MS) as done:
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
        # Until the worker has stopped and removed its file, the dialog stays and says so.
        assert progress.isVisible() and progress.label.text() == "Cancelling…" and not cancel.isEnabled()
    assert done.args == [str(path), "cancelled"]
    assert os.listdir(out_dir) == ["long.mp4"] and path.read_bytes() == b"the user's earlier video"
    assert not progress.isVisible()
    assert "cancelled" in w.statusBar().currentMessage()
    qtbot.keyClick(w, Qt.Key.Key_Right)  # the worker is free again: edits render
    wait_for_current_frame(qtbot, w)


def test_bad_export_choices_are_named_before_anything_starts(qtbot, video_window, out_dir):
    w, _ = video_window
    dialog = open_video_dialog(qtbot, w, out_dir / "clip.avi", "1")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and "clip.avi" in dialog.error.text() and ".mp4" in dialog.error.text()
    missing = out_dir / "no such folder" / "clip.gif"
    dialog.path.setFocus()
    qtbot.keyClick(dialog.path, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(dialog.path, str(missing))
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and "does not exist" in dialog.error.text()
    assert not w.video_exporter.running and os.listdir(out_dir) == []


def test_an_export_that_cannot_be_written_reports_the_path(qtbot, video_window, out_dir):
    w, _ = video_window
    target = out_dir / "taken.gif"
    target.mkdir()  # a folder where the file should go: only the final rename can fail
    dialog = open_video_dialog(qtbot, w, target, "0.2")
    with qtbot.waitSignal(w.video_exporter.finished, timeout=WAIT_MS) as done:
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert done.args[1] == "failed"
    title, message = w.last_error
    assert title == "Cannot export video" and str(target) in message
    assert os.listdir(out_dir) == ["taken.gif"] and target.is_dir()  # no partial file beside it


def test_closing_the_window_during_an_export_leaves_no_partial_file(qtbot, video_window, out_dir):
    w, _ = video_window
    dialog = open_video_dialog(qtbot, w, out_dir / "long.gif", "600")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.video_exporter.progress.value() >= 2, timeout=WAIT_MS)
    assert any(name.startswith(".long.gif.") and name.endswith(".part")
               for name in os.listdir(out_dir))  # being written, beside the target
    w.close()  # stops the worker: the export is cancelled and its temporary file removed
    assert os.listdir(out_dir) == []


def test_a_session_keeps_the_playhead_and_the_motion(qtbot, video_window, out_dir):
    w, g = video_window
    for _ in range(7):
        qtbot.keyClick(w, Qt.Key.Key_Right)
    qtbot.keyClick(w, Qt.Key.Key_M)
    saved = w.document.state
    assert w.files.save_session(out_dir / "scene.json")
    qtbot.keyClick(w, Qt.Key.Key_Home)
    qtbot.keyClick(w, Qt.Key.Key_M)
    w.files.open_session(out_dir / "scene.json")
    assert w.document.state == saved and saved.time == 7 / 25
    assert w.timeline.slider.value() == 7
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), render(g, saved).image)


class FakeFrame:
    """What FrameCache reads of a frame: its arrays' sizes."""

    def __init__(self, nbytes: int):
        self.image = np.zeros(nbytes, np.uint8)
        self.heatmaps, self.offsets = {}, {}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30), st.integers(1, 40)), min_size=1, max_size=60))
def test_frame_cache_stays_within_its_budget_and_knows_its_times(puts):
    from app.playback import FrameCache
    from models.document.scene import SceneState

    cache, kept = FrameCache(max_bytes=100), {}
    for seed, frame_index, size in puts:
        state = SceneState(seed=seed, time=frame_index / 25)
        frame = FakeFrame(size)
        if not cache.has(state.timeless(), state.time):  # a frame already there is kept, not replaced
            kept[(seed, state.time)] = frame
        cache.put(state, frame)
        assert cache.bytes <= cache.max_bytes or len(cache) == 1
    present = {key: f for key, f in kept.items() if cache.get(SceneState(seed=key[0], time=key[1])) is f}
    assert len(present) == len(cache) and cache.bytes == sum(f.image.nbytes for f in present.values())
    for seed in range(3):
        assert cache.times(SceneState(seed=seed)) == {t for s, t in present if s == seed}
    assert puts[-1][:2] in {(s, round(t * 25)) for s, t in present}, "the newest frame is never evicted"


def test_buffer_strip_runs():
    from app.timeline import runs

    assert runs([]) == [] and runs([4]) == [(4, 4)]
    assert runs([0, 1, 2, 5, 6, 9]) == [(0, 2), (5, 6), (9, 9)]


def test_the_transport_settings_are_remembered(qtbot, video_window, make_window, tiny_checkpoints):
    w, _ = video_window
    set_spin(qtbot, w.timeline.length, "2.5")
    w.timeline.speed.setFocus()
    qtbot.keyClick(w.timeline.speed, Qt.Key.Key_Up)  # 1x -> 0.5x
    w.timeline.fps.setFocus()
    qtbot.keyClick(w.timeline.fps, Qt.Key.Key_Up)  # 25 -> 24 fps
    qtbot.keyClick(w, Qt.Key.Key_L)
    w.close()
    again = make_window(tiny_checkpoints["clips"][0])
    pb = again.playback
    assert (pb.fps, pb.speed, pb.loop, pb.length_s) == (24, 0.5, False, 2.5)
    assert not again.act_loop.isChecked() and again.timeline.fps.currentData() == 24
    assert again.timeline.speed.currentData() == 0.5 and again.timeline.length.value() == 2.5


def test_garbled_transport_settings_fall_back_to_defaults(qtbot, studio_env):
    from app import settings
    from app.playback import SETTINGS_KEY, remembered_transport

    settings.put(SETTINGS_KEY, {"fps": "lots", "speed": 3.7, "loop": "false", "length_s": "nan"})
    assert remembered_transport() == (25, 1.0, False, 4.0)
    settings.put(SETTINGS_KEY, "not a dict")
    assert remembered_transport() == (25, 1.0, True, 4.0)


def test_the_rendered_frames_strip_follows_undo_to_a_scene_already_cached(qtbot, video_window):
    """Undo back to a scene whose frames are cached shows them without a render; the strip
    must show that scene's frames, not the edit's (the audit found it stuck on the edit's)."""
    w, _ = video_window
    pb = w.playback
    pb.set_length(0.2)
    n = pb.frame_count
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: len(pb.cached_indices()) == n, timeout=WAIT_MS)
    qtbot.keyClick(w, Qt.Key.Key_Space)  # paused, every frame of this scene rendered
    qtbot.keyClick(w, Qt.Key.Key_M)  # New Motion: another scene, one frame of it rendered
    wait_for_current_frame(qtbot, w)
    qtbot.waitUntil(lambda: w.timeline.strip.cached == pb.cached_indices(), timeout=WAIT_MS)
    assert len(pb.cached_indices()) < n
    qtbot.keyClick(w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(pb.cached_indices()) == n, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.timeline.strip.cached == pb.cached_indices(), timeout=WAIT_MS)
