"""The studio's video features, audited: scrubbing the timeline with the mouse, the rate
label, Export Video's start frame and a cancel that comes as the encoder finishes."""
import os
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QStyle, QStyleOptionSlider
from test_app_helpers import WAIT_MS, shown_image, wait_for_current_frame

from app.render_worker import RenderWorker
from models.io.video import Cancelled, write_video
from models.render import render

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


@pytest.fixture
def clips_window(make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["clips"]
    return make_window(path, worker=RenderWorker(device="cpu")), g


def type_length(qtbot, window, text: str) -> None:
    """The timeline's Length box, as a user fills it: select all, type, Enter."""
    spin = window.timeline.length
    spin.setFocus()
    qtbot.keyClick(spin, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(spin, text)
    qtbot.keyClick(spin, Qt.Key.Key_Return)


def slider_rects(slider):
    option = QStyleOptionSlider()
    slider.initStyleOption(option)
    style = slider.style()
    return (style.subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderGroove, slider),
            style.subControlRect(QStyle.ComplexControl.CC_Slider, option, QStyle.SubControl.SC_SliderHandle, slider))


def frame_under(slider, x: int) -> int:
    """The frame whose handle centre is nearest to x (what a scrubber shows under the mouse)."""
    groove, handle = slider_rects(slider)
    return QStyle.sliderValueFromPosition(slider.minimum(), slider.maximum(), x - groove.x() - handle.width() // 2,
                                          groove.width() - handle.width())


def test_a_drag_that_starts_beside_the_handle_scrubs(qtbot, clips_window):
    """A short range has few frames far apart: a press on the groove jumps to the nearest
    frame, but the handle then lies beside the mouse, and QSlider took the press for the
    groove's: the drag that followed moved nothing (the README: click or drag to scrub)."""
    w, g = clips_window
    type_length(qtbot, w, "0.4")
    slider = w.timeline.slider
    assert slider.maximum() == 9, f"0.4 s at 25 fps is 10 frames, the slider has {slider.maximum() + 1}"
    y = slider.height() // 2
    groove, handle = slider_rects(slider)
    step = (groove.width() - handle.width()) / 9  # pixels between two frames' handle positions

    def at(frame: float) -> int:
        return round(groove.x() + handle.width() / 2 + frame * step)

    start, end = at(2.6), at(7)  # the press between frames 2 and 3: nearer 3, beside its handle
    qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=QPoint(start, y))
    pressed = slider.value()
    assert pressed == frame_under(slider, start) == 3
    assert not slider_rects(slider)[1].contains(QPoint(start, y)), "the press is meant to land beside the handle"
    assert slider.isSliderDown(), "a press on the timeline holds the playhead until the release"
    seen = []
    for x in range(start, end + 1, max(1, round(step / 2))):
        qtbot.mouseMove(slider, QPoint(x, y))
        seen.append(round(w.document.state.time * 25))
    qtbot.mouseMove(slider, QPoint(end, y))
    qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=QPoint(end, y))
    assert slider.value() == 7 and w.document.state.time == 7 / 25, (
        f"dragged from frame {pressed} to the handle position of frame 8 of 10, the playhead is at frame"
        f" {round(w.document.state.time * 25) + 1} (t = {w.document.state.time} s)")
    assert set(range(3, 8)) <= set(seen), f"the playhead follows the drag frame by frame, saw {seen}"
    assert w.document.undo_stack.count() == 0  # scrubbing is no edit
    wait_for_current_frame(qtbot, w)
    assert np.array_equal(shown_image(w), render(g, w.document.state).image)


def test_the_rate_label_says_playing_as_soon_as_playback_starts(qtbot, clips_window):
    """The label beside the transport said "paused" for the first second of playback (until
    the first rate was measured) whenever the frames were rendered already."""
    w, _ = clips_window
    pb, label = w.playback, w.timeline.rate_label
    type_length(qtbot, w, "0.2")
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: pb.cached_indices() == list(range(pb.frame_count)), timeout=WAIT_MS)
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert not pb.playing and label.text() == "paused"
    qtbot.keyClick(w, Qt.Key.Key_Space)  # every frame is cached: it plays at once, never waits
    assert pb.playing and not pb.waiting
    assert label.text() != "paused", f"playing, the timeline's rate label says {label.text()!r}"
    qtbot.keyClick(w, Qt.Key.Key_Space)
    assert label.text() == "paused"


def test_export_video_starts_at_the_frame_on_the_canvas_when_opened_during_playback(qtbot, clips_window):
    """The dialog's Start is the playhead when it opens ("so the frame on the canvas is the
    first"), but playback went on under the window-modal dialog: at Export, the canvas
    showed a later frame than the video's first."""
    w, g = clips_window
    qtbot.keyClick(w, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: w.document.state.time > 0, timeout=WAIT_MS)
    qtbot.keyClick(w, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = w.video_exporter.dialog
    assert dialog is not None and dialog.isVisible()
    assert not w.playback.playing, "the export dialog is open: the playhead must stay on the video's first frame"
    wait_for_current_frame(qtbot, w)
    assert w.canvas.frame_state.time == dialog.start_time() == w.document.state.time
    assert np.array_equal(shown_image(w), render(g, replace(w.document.state, time=dialog.start_time())).image)
    dialog.reject()


@pytest.mark.parametrize("ext", ["mp4", "gif"])
def test_a_cancel_while_the_encoder_finishes_leaves_the_old_file(tmp_path, ext):
    """Cancel stays on screen after the last frame, while the encoder finishes and the file
    is checked (seconds for a long MP4); a cancel then was ignored: the video was put in
    place, over the user's earlier file, and reported written."""
    path = tmp_path / f"clip.{ext}"
    path.write_bytes(b"the user's earlier video")
    cancelled = []

    def progress(done: int, total: int) -> None:
        if done == total:
            cancelled.append(done)  # the user presses Cancel as the bar fills

    frames = (np.full((16, 16, 3), 40 * i, np.uint8) for i in range(5))
    with pytest.raises(Cancelled, match="clip"):
        write_video(path, frames, 10, 5, progress=progress, cancel=lambda: bool(cancelled))
    assert cancelled == [5]
    assert path.read_bytes() == b"the user's earlier video", f"{path} was replaced after the export was cancelled"
    assert os.listdir(tmp_path) == [path.name], "no temporary file is left beside it"


def test_a_session_whose_playhead_is_past_the_range_grows_the_range(qtbot, clips_window, tmp_path):
    """Saved at 7 s with a 10 s range, opened with 4 s: the slider sat on the last frame
    ("frame 100 of 100") while the canvas showed 7 s, and its last position did nothing."""
    w, g = clips_window
    w.document.set_time(7.0)
    assert w.files.save_session(tmp_path / "late.json")
    w.document.set_time(0.0)
    type_length(qtbot, w, "4")
    assert w.playback.length_s == 4.0
    w.files.open_session(tmp_path / "late.json")
    qtbot.waitUntil(lambda: w.document.state.time == 7.0, timeout=WAIT_MS)
    slider = w.timeline.slider
    assert slider.value() == 7 * 25 == w.playback.index, (
        f"the playhead is at 7 s (frame 176), the slider at frame {slider.value() + 1} of {slider.maximum() + 1}")
    assert slider.maximum() >= slider.value() and w.playback.length_s >= 7.0
    qtbot.keyClick(w, Qt.Key.Key_Left)  # the frame before it, as on any frame
    assert w.document.state.time == 174 / 25


def test_space_plays_after_a_rate_is_chosen_with_the_mouse(qtbot, clips_window):
    """The Rate box, chosen from with the mouse, kept the keyboard focus: Space then opened
    its list instead of playing."""
    w, g = clips_window
    box = w.timeline.fps
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton)
    popup = box.view()
    qtbot.waitUntil(popup.isVisible, timeout=WAIT_MS)
    # (the list's own mouse clicks do not reach it offscreen; its keys do)
    qtbot.keyClick(popup, Qt.Key.Key_Home)
    qtbot.keyClick(popup, Qt.Key.Key_Down)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not popup.isVisible(), timeout=WAIT_MS)
    assert w.playback.fps == 12  # the second rate
    assert not box.hasFocus()
    qtbot.keyClick(w.focusWidget() or w, Qt.Key.Key_Space)
    assert w.playback.playing, "Space plays, whatever was last clicked in the timeline"
    w.playback.pause()
