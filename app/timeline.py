"""The timeline dock (video generators): transport buttons, a frame slider that jumps to
where it is clicked, a strip showing which frames are rendered, the time, and the rate,
speed, loop and length controls. It shows the Playback's state and calls its methods;
it never renders anything itself."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QSignalBlocker, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QToolButton,
    QWidget,
)

from . import theme
from .playback import FPS_CHOICES, MAX_LENGTH_S, SPEED_CHOICES


class FrameSlider(QSlider):
    """A horizontal slider whose value jumps to the clicked frame (not a page step towards
    it), then follows the drag: what a scrubber in a video tool does."""

    def __init__(self, parent=None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # arrows step frames through the window's actions

    def _rect(self, control: QStyle.SubControl):
        option = QStyleOptionSlider()
        self.initStyleOption(option)
        return self.style().subControlRect(QStyle.ComplexControl.CC_Slider, option, control, self)

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            groove = self._rect(QStyle.SubControl.SC_SliderGroove)
            handle = self._rect(QStyle.SubControl.SC_SliderHandle)
            if not handle.contains(ev.position().toPoint()):
                span = groove.width() - handle.width()
                x = round(ev.position().x()) - groove.x() - handle.width() // 2
                self.setValue(QStyle.sliderValueFromPosition(self.minimum(), self.maximum(), x, max(1, span)))
                # Press the handle where it is now, so that QSlider drags it. With few frames
                # the handle lands up to half a frame's width from the click: QSlider, pressed
                # there, took it for the groove (a page step, and a drag that moved nothing).
                centre = QPointF(self._rect(QStyle.SubControl.SC_SliderHandle).center())
                ev = QMouseEvent(ev.type(), centre, QPointF(self.mapToGlobal(centre)), ev.button(), ev.buttons(),
                                 ev.modifiers())
        super().mousePressEvent(ev)


class BufferStrip(QWidget):
    """A thin strip under the slider: rendered frames in the accent colour."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedHeight(4)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.count, self.cached = 1, []

    def set_frames(self, count: int, cached: list[int]) -> None:
        self.count, self.cached = max(1, count), cached
        self.update()

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.RAISED))
        w = self.width() / self.count
        colour = QColor(theme.ACCENT)
        for first, last in runs(self.cached):  # one rectangle per run of rendered frames
            x0, x1 = round(first * w), round((last + 1) * w)
            p.fillRect(x0, 0, max(1, x1 - x0), self.height(), colour)
        p.end()


def runs(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted frame indices as (first, last) runs: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


class TimelinePanel(QWidget):
    def __init__(self, playback, transport, loop_action, motion_action, parent=None):
        super().__init__(parent)
        self.playback = playback
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        for action in transport:
            button = QToolButton()
            button.setDefaultAction(action)
            button.setMinimumWidth(34)
            buttons.addWidget(button)
        self.slider = FrameSlider()
        self.slider.setToolTip("The playhead: click or drag to scrub (Left/Right step one frame)")
        self.slider.valueChanged.connect(playback.go_to)
        self.strip = BufferStrip()
        self.strip.setToolTip("Frames already rendered: these play at once")
        self.time_label = QLabel()
        self.time_label.setMinimumWidth(210)
        self.time_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.rate_label = QLabel()
        self.rate_label.setStyleSheet(f"color: {theme.MUTED};")
        self.rate_label.setMinimumWidth(120)
        self.fps = QComboBox()
        for fps in FPS_CHOICES:
            self.fps.addItem(f"{fps} fps", fps)
        self.fps.setToolTip("Frame rate of the sequence: the generator renders any time, so any rate")
        self.fps.activated.connect(lambda i: playback.set_fps(self.fps.itemData(i)))
        self.speed = QComboBox()
        for speed in SPEED_CHOICES:
            self.speed.addItem(f"{speed:g}×", speed)
        self.speed.setToolTip("Playback speed (the frames stay the same; they are shown faster or slower)")
        self.speed.activated.connect(lambda i: playback.set_speed(self.speed.itemData(i)))
        for box in (self.fps, self.speed):
            # Chosen with the mouse, a box kept the focus and with it Space (which opened its
            # list instead of playing, the focused control keeping its keys): Tab still reaches it.
            box.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.length = QDoubleSpinBox()
        self.length.setRange(0.1, MAX_LENGTH_S)
        self.length.setDecimals(1)
        self.length.setSingleStep(1.0)
        self.length.setSuffix(" s")
        self.length.setKeyboardTracking(False)
        self.length.setToolTip("Length of the range that plays (and loops)")
        self.length.valueChanged.connect(playback.set_length)
        loop, motion = QToolButton(), QToolButton()
        loop.setDefaultAction(loop_action)
        motion.setDefaultAction(motion_action)
        settings = QHBoxLayout()
        settings.setSpacing(6)
        for label, widget in (("Rate", self.fps), ("Speed", self.speed), ("Length", self.length)):
            settings.addWidget(QLabel(label))
            settings.addWidget(widget)
        settings.addSpacing(8)
        settings.addWidget(loop)
        settings.addWidget(motion)
        settings.addStretch(1)
        settings.addWidget(self.rate_label)
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 6, 8, 6)
        grid.setVerticalSpacing(2)
        grid.addLayout(buttons, 0, 0, 2, 1)
        grid.addWidget(self.slider, 0, 1)
        grid.addWidget(self.time_label, 0, 2, 2, 1)
        grid.addWidget(self.strip, 1, 1)
        grid.addLayout(settings, 2, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        playback.changed.connect(self.sync)
        playback.bufferChanged.connect(self._sync_strip)
        playback.rateMeasured.connect(self._show_rate)
        playback.document.stateChanged.connect(lambda _: self.sync())
        self.sync()

    def sync(self) -> None:
        pb = self.playback
        n, i = pb.frame_count, pb.index
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, n - 1)
            self.slider.setValue(i)
        for combo, value in ((self.fps, pb.fps), (self.speed, pb.speed)):
            with QSignalBlocker(combo):
                combo.setCurrentIndex(max(0, combo.findData(value)))
        with QSignalBlocker(self.length):
            self.length.setValue(pb.length_s)
        seconds = pb.document.state.time if pb.document.state is not None else 0.0
        self.time_label.setText(f"{seconds:6.2f} s / {pb.length_s:.2f} s   frame {i + 1} of {n}")
        if not pb.playing:
            self.rate_label.setText("paused")
        elif pb.waiting:
            self.rate_label.setText("rendering ahead…")
        elif self.rate_label.text() in ("paused", "rendering ahead…"):
            self.rate_label.setText("playing")  # the measured rate follows within a second

    def _sync_strip(self) -> None:
        self.strip.set_frames(self.playback.frame_count, self.playback.cached_indices())

    def _show_rate(self, rate: float) -> None:
        if self.playback.playing and not self.playback.waiting:
            self.rate_label.setText(f"playing {rate:.1f} fps")
