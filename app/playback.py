"""Playback for generators with the time capability: the playhead, frame rate, speed, loop
and length, and the frames the worker renders ahead of the display.

Time is real-valued (StyleGAN-V): a sequence at F fps shows the frames at t = i / F
(models.video.frame_time), and the frame at a time is the same whatever the rate. Frames
are cached by (scene without its time, t), so changing the rate keeps the frames that
coincide, undo finds the frames of the scene it returns to, and an edit, which makes a
new scene, gets all its frames rendered anew: every edit applies to every frame.

The playhead never skips a frame it does not have: when rendering falls behind, playback
waits for it ("buffering") and shows every frame in order; once the loop is rendered it
plays at the chosen rate from the cache.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import replace

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

FPS_CHOICES = (8, 12, 15, 24, 25, 30, 50, 60)
SPEED_CHOICES = (0.25, 0.5, 1.0, 2.0)
DEFAULT_FPS = 25
DEFAULT_LENGTH_S = 4.0
MAX_LENGTH_S = 600.0
AHEAD_FRAMES = 600  # the most frames one prefetch asks for (a 24 s loop at 25 fps)
CACHE_BYTES = 512 * 2**20


def content_of(state):
    """The scene without its time: what a frame depends on besides t."""
    return replace(state, time=0.0)


def frame_bytes(frame) -> int:
    return frame.image.nbytes + sum(a.nbytes for a in frame.heatmaps.values()) + sum(
        a.nbytes for a in frame.offsets.values())


class FrameCache:
    """Rendered frames by (content, time), least recently used out first past `max_bytes`."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self._frames: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, state):
        key = (content_of(state), state.time)
        frame = self._frames.get(key)
        if frame is not None:
            self._frames.move_to_end(key)
        return frame

    def has(self, content, t: float) -> bool:
        return (content, t) in self._frames

    def put(self, state, frame) -> None:
        key = (content_of(state), state.time)
        if key in self._frames:
            return
        self._frames[key] = frame
        self.bytes += frame_bytes(frame)
        while self.bytes > self.max_bytes and len(self._frames) > 1:
            _, old = self._frames.popitem(last=False)
            self.bytes -= frame_bytes(old)

    def clear(self) -> None:
        self._frames.clear()
        self.bytes = 0


class Playback(QObject):
    """The transport. `document.set_time` moves the playhead (never an undo step); the
    window shows a cached frame at once and asks the worker for a missing one."""

    changed = Signal()  # playhead, rate, speed, loop, length or playing changed
    bufferChanged = Signal()  # frames were rendered ahead (or dropped)
    rateMeasured = Signal(float)  # frames shown per second of wall time, while playing

    def __init__(self, document, worker, generation, parent=None):
        super().__init__(parent)
        self.document, self.worker = document, worker
        self._generation = generation  # callable: the load token renders are made for
        self.cache = FrameCache()
        self.enabled = False  # the loaded generator has the time capability
        self.fps = DEFAULT_FPS
        self.speed = 1.0
        self.loop = True
        self.length_s = DEFAULT_LENGTH_S
        self.playing = False
        self.waiting = False  # the next frame is not rendered yet
        self._clip_id = 0
        self._content = None  # the scene the prefetched clip was made for
        self._shown, self._since = 0, time.monotonic()
        self._timer = QTimer(self, singleShot=True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._due = 0.0  # when the next frame is due (monotonic s): 60 fps is 16.67 ms, not 17
        self._timer.timeout.connect(self._tick)
        self._rate_timer = QTimer(self, interval=1000)
        self._rate_timer.timeout.connect(self._measure_rate)
        document.generatorChanged.connect(self._on_generator)
        document.stateChanged.connect(self._on_state)

    # ---- frames and times --------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        from models.video import frame_count

        return frame_count(self.length_s, self.fps)

    def time_of(self, index: int) -> float:
        from models.video import frame_time

        return frame_time(0.0, index, self.fps)

    @property
    def index(self) -> int:
        """The frame of the playhead (the nearest one, if the time lies between frames)."""
        state = self.document.state
        return 0 if state is None else min(self.frame_count - 1, round(state.time * self.fps))

    def cached_indices(self) -> list[int]:
        state = self.document.state
        if state is None or not self.enabled:
            return []
        content = content_of(state)
        return [i for i in range(self.frame_count) if self.cache.has(content, self.time_of(i))]

    # ---- transport ---------------------------------------------------------------------
    def go_to(self, index: int) -> None:
        if self.enabled and self.document.state is not None:
            index = max(0, min(self.frame_count - 1, int(index)))
            self.document.set_time(self.time_of(index))
            self.changed.emit()

    def step(self, frames: int) -> None:
        self.pause()
        n, i = self.frame_count, self.index + frames
        self.go_to(i % n if self.loop else i)

    def play(self) -> None:
        if not self.enabled or self.playing:
            return
        if not self.loop and self.index >= self.frame_count - 1:
            self.go_to(0)  # play at the end of a non-looping range starts over
        self.playing = True
        self._shown, self._since = 0, time.monotonic()
        self._restart_timer()
        self._rate_timer.start()
        self._prefetch(force=True)
        self.changed.emit()

    def pause(self) -> None:
        if not self.playing:
            return
        self.playing = self.waiting = False
        self._timer.stop()
        self._rate_timer.stop()
        self.worker.cancel_clip()  # paused, the CPU is the user's edits' again
        self._content = None
        self.changed.emit()

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def set_fps(self, fps: int) -> None:
        seconds = None if self.document.state is None else self.document.state.time
        self.fps = int(fps)
        self._restart_timer()
        if seconds is not None:  # stay at (the frame nearest to) the same moment
            self.go_to(round(seconds * self.fps))
        self._prefetch(force=True)
        self.changed.emit()

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)
        self._restart_timer()
        self.changed.emit()

    def set_loop(self, on: bool) -> None:
        self.loop = bool(on)
        self._prefetch(force=True)
        self.changed.emit()

    def set_length(self, seconds: float) -> None:
        self.length_s = min(max(float(seconds), 1.0 / self.fps), MAX_LENGTH_S)
        if self.document.state is not None and self.index > self.frame_count - 1:
            self.go_to(self.frame_count - 1)
        self._prefetch(force=True)
        self.changed.emit()

    @property
    def period_s(self) -> float:
        return 1.0 / (self.fps * self.speed)

    def _restart_timer(self) -> None:
        self._due = time.monotonic() + self.period_s
        if self.playing:
            self._schedule()

    def _schedule(self) -> None:
        self._timer.start(max(0, round((self._due - time.monotonic()) * 1000)))

    def _tick(self) -> None:
        state = self.document.state
        if state is None or not self.playing:
            return
        now = time.monotonic()
        self._due += self.period_s
        if self._due < now:  # fell behind (rendering, a busy GUI): carry on from now, no burst
            self._due = now + self.period_s
        self._schedule()
        nxt = self.index + 1
        if nxt >= self.frame_count:
            if not self.loop:
                self.pause()
                return
            nxt = 0
        t = self.time_of(nxt)
        waiting = not self.cache.has(content_of(state), t)
        if waiting != self.waiting:
            self.waiting = waiting
            self.changed.emit()
        if waiting:
            self._prefetch()  # e.g. the clip was dropped after a render error
            return
        self._shown += 1
        self.document.set_time(t)
        self.changed.emit()

    def _measure_rate(self) -> None:
        now = time.monotonic()
        self.rateMeasured.emit(self._shown / max(1e-6, now - self._since))
        self._shown, self._since = 0, now

    # ---- rendering ahead ---------------------------------------------------------------
    def _prefetch(self, force: bool = False) -> None:
        """Ask the worker for the frames ahead of the playhead that are not cached yet.
        A new request (a new scene, rate or range) replaces the one in progress."""
        state = self.document.state
        if not (self.playing and self.enabled) or state is None:
            return
        content = content_of(state)
        if content == self._content and not force:
            return
        self._content = content
        n, start = self.frame_count, self.index
        order = [(start + k) % n if self.loop else start + k for k in range(1, min(n, AHEAD_FRAMES) + 1)]
        wanted = [replace(state, time=self.time_of(i)) for i in order if i < n]
        wanted = [s for s in wanted if not self.cache.has(content, s.time)]
        self._clip_id += 1
        if wanted:
            self.worker.request_clip(wanted, self._clip_id, self._generation())
        else:
            self.worker.cancel_clip()

    @Slot(int, object, object, float)
    def on_clip_frame(self, clip_id: int, state, frame, _ms: float) -> None:
        if clip_id == self._clip_id and self.enabled:
            self.cache.put(state, frame)
            self.bufferChanged.emit()
            if self.playing and self.waiting:  # the frame playback waits for: show it now
                self._due = time.monotonic()
                self._timer.start(0)

    def on_rendered(self, state, frame) -> None:
        """A frame the window asked for (scrubbing, an edit): keep it for playback."""
        if self.enabled:
            self.cache.put(state, frame)
            self.bufferChanged.emit()

    def _on_state(self, state) -> None:
        if self.playing and content_of(state) != self._content:
            self._prefetch()  # an edit: render the new scene's frames ahead
            self.bufferChanged.emit()

    def _on_generator(self, info) -> None:
        self.pause()
        self.cache.clear()
        self._clip_id += 1  # frames of the old model still on their way are dropped
        self.enabled = info.config.time is not None
        self.changed.emit()
        self.bufferChanged.emit()
