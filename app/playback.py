"""Playback for generators with the time capability: the playhead, frame rate, speed, loop
and length, and the frames the worker renders ahead of the display.

Time is real-valued (StyleGAN-V): a sequence at F fps shows the frames at t = i / F
(models.io.video.frame_time), and the frame at a time is the same whatever the rate. Frames
are cached by (scene without its time, t), so changing the rate keeps the frames that
coincide, undo finds the frames of the scene it returns to, and an edit, which makes a
new scene, gets all its frames rendered anew: every edit applies to every frame.

The playhead never skips a frame it does not have: when rendering falls behind, playback
waits for it ("buffering") and shows every frame in order; once the loop is rendered it
plays at the chosen rate from the cache.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot

from models.document.video_timing import frame_count, frame_time

from . import settings

FPS_CHOICES = (8, 12, 15, 24, 25, 30, 50, 60)
SPEED_CHOICES = (0.25, 0.5, 1.0, 2.0)
DEFAULT_FPS = 25
DEFAULT_LENGTH_S = 4.0
MAX_LENGTH_S = 600.0
AHEAD_FRAMES = 600  # the most frames one request asks for; more are asked for as they play
CACHE_BYTES = 512 * 2**20
BUFFER_MS = 100  # the "rendered frames" strip follows at most this often
SETTINGS_KEY = "playback/transport"


def frame_bytes(frame) -> int:
    return frame.image.nbytes + sum(a.nbytes for a in frame.heatmaps.values()) + sum(
        a.nbytes for a in frame.offsets.values())


def remembered_transport() -> tuple[int, float, bool, float]:
    """The rate, speed, loop and length last used (QSettings); defaults for anything
    missing or not one of the choices (a settings file is user-editable text)."""
    saved = settings.get(SETTINGS_KEY)
    saved = saved if isinstance(saved, dict) else {}

    def number(key, kind, default):
        try:
            return kind(saved.get(key, default))
        except (TypeError, ValueError):
            return default

    fps = number("fps", int, DEFAULT_FPS)
    speed = number("speed", float, 1.0)
    length = number("length_s", float, DEFAULT_LENGTH_S)
    if not math.isfinite(length):
        length = DEFAULT_LENGTH_S
    return (fps if fps in FPS_CHOICES else DEFAULT_FPS,
            speed if speed in SPEED_CHOICES else 1.0,
            saved.get("loop", True) not in (False, "false"),  # INI settings give back strings
            min(max(length, 0.1), MAX_LENGTH_S))


class FrameCache:
    """Rendered frames by (scene without its time, time), least recently used out first
    past `max_bytes`. Keeps the set of cached times per scene, so "which frames are
    rendered" costs as many steps as there are frames cached, not frames in the range."""

    def __init__(self, max_bytes: int = CACHE_BYTES):
        self.max_bytes = max_bytes
        self.bytes = 0
        self.frame_size = 0  # bytes of the last frame stored: how many fit, roughly
        self._frames: OrderedDict = OrderedDict()  # (scene, t) -> (Frame, bytes)
        self._times: dict = {}  # scene -> set of cached times

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, state):
        key = (state.timeless(), state.time)
        entry = self._frames.get(key)
        if entry is None:
            return None
        self._frames.move_to_end(key)
        return entry[0]

    def has(self, scene, t: float) -> bool:
        return t in self._times.get(scene, ())

    def times(self, scene) -> set:
        return self._times.get(scene, set())

    def put(self, state, frame) -> None:
        scene = state.timeless()
        key = (scene, state.time)
        if key in self._frames:
            return
        size = frame_bytes(frame)
        self._frames[key] = (frame, size)
        self._times.setdefault(scene, set()).add(state.time)
        self.bytes += size
        self.frame_size = size
        while self.bytes > self.max_bytes and len(self._frames) > 1:
            (old_scene, old_t), (_, old_size) = self._frames.popitem(last=False)
            self.bytes -= old_size
            times = self._times[old_scene]
            times.discard(old_t)
            if not times:
                del self._times[old_scene]

    def clear(self) -> None:
        self._frames.clear()
        self._times.clear()
        self.bytes = 0


class Playback(QObject):
    """The transport. `document.set_time` moves the playhead (never an undo step); the
    window shows a cached frame at once and asks the worker for a missing one."""

    changed = Signal()  # playhead, rate, speed, loop, length or playing changed
    bufferChanged = Signal()  # frames were rendered ahead (at most every BUFFER_MS)
    rateMeasured = Signal(float)  # frames shown per second of wall time, while playing
    failed = Signal(str)  # rendering ahead failed: playback paused, this says why

    def __init__(self, document, worker, generation, parent=None):
        super().__init__(parent)
        self.document, self.worker = document, worker
        self._generation = generation  # callable: the load token renders are made for
        self.cache = FrameCache()
        self.enabled = False  # the loaded generator has the time capability
        self.fps, self.speed, self.loop, self.length_s = remembered_transport()
        self.playing = False
        self.waiting = False  # the next frame is not rendered yet
        self._clip_id = 0
        self._generator_clips = 0  # the first clip id of the loaded generator
        self._content = None  # the scene the frames being rendered ahead are of
        self._pending: set[float] = set()  # their times, until each arrives
        self._failure: tuple | None = None  # (scene, time, message) of a frame that failed ahead
        self._shown, self._since = 0, time.monotonic()
        self._timer = QTimer(self, singleShot=True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._due = 0.0  # when the next frame is due (monotonic s): 60 fps is 16.67 ms, not 17
        self._timer.timeout.connect(self._tick)
        self._rate_timer = QTimer(self, interval=1000)
        self._rate_timer.timeout.connect(self._measure_rate)
        self._buffer_timer = QTimer(self, singleShot=True, interval=BUFFER_MS)
        self._buffer_timer.timeout.connect(self.bufferChanged)
        worker.clipFrameReady.connect(self.on_clip_frame)  # slots: queued to the GUI thread
        worker.clipFailed.connect(self.on_clip_failed)
        document.generatorChanged.connect(self._on_generator)
        document.stateChanged.connect(self._on_state)

    def _remember(self) -> None:
        settings.put(SETTINGS_KEY, {"fps": self.fps, "speed": self.speed, "loop": self.loop,
                                    "length_s": self.length_s})

    # ---- frames and times --------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        if self.document.config is None:
            # Nothing open yet (the window being built): importing models here would load
            # torch on the GUI thread, seconds before the window could show.
            return 1

        return frame_count(self.length_s, self.fps)

    def time_of(self, index: int) -> float:

        return frame_time(0.0, index, self.fps)

    def _nearest_frame(self) -> int:
        state = self.document.state
        return 0 if state is None else round(state.time * self.fps)

    @property
    def index(self) -> int:
        """The frame of the playhead (the nearest one, if the time lies between frames)."""
        return min(self.frame_count - 1, self._nearest_frame())

    def cached_indices(self) -> list[int]:
        state = self.document.state
        if state is None or not self.enabled:
            return []
        n, fps = self.frame_count, self.fps
        found = ((round(t * fps), t) for t in self.cache.times(state.timeless()))
        return sorted(i for i, t in found if i < n and self.time_of(i) == t)

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
        self._failure = None
        self._timer.stop()
        self._rate_timer.stop()
        self.worker.cancel_clip()  # paused, the CPU is the user's edits' again
        self._content, self._pending = None, set()
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
        self._buffer_changed()
        self._remember()
        self.changed.emit()

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)
        self._restart_timer()
        self._remember()
        self.changed.emit()

    def set_loop(self, on: bool) -> None:
        self.loop = bool(on)
        self._prefetch(force=True)
        self._remember()
        self.changed.emit()

    def set_length(self, seconds: float) -> None:
        self.length_s = min(max(float(seconds), 1.0 / self.fps), MAX_LENGTH_S)
        if self.document.state is not None and self._nearest_frame() > self.frame_count - 1:
            self.go_to(self.frame_count - 1)  # the playhead was past the new end
        self._prefetch(force=True)
        self._buffer_changed()
        self._remember()
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
        waiting = not self.cache.has(state.timeless(), t)
        if waiting != self.waiting:
            self.waiting = waiting
            self.changed.emit()
        if waiting:
            if self._failure is not None and self._failure[:2] == (state.timeless(), t):
                message = self._failure[2]
                self.pause()
                self.failed.emit(message)
            elif t not in self._pending:  # past the frames asked for, or they were evicted: ask again
                self._prefetch(force=True)
            return
        self._shown += 1
        self.document.set_time(t)  # its stateChanged updates the timeline: no `changed` on every frame

    def _measure_rate(self) -> None:
        now = time.monotonic()
        self.rateMeasured.emit(self._shown / max(1e-6, now - self._since))
        self._shown, self._since = 0, now

    # ---- rendering ahead ---------------------------------------------------------------
    def _ahead(self) -> int:
        """How many frames to ask for at once: AHEAD_FRAMES, or half of what the cache
        holds (the frames ahead must not push each other out before they are shown)."""
        if not self.cache.frame_size:
            return AHEAD_FRAMES
        return max(2, min(AHEAD_FRAMES, self.cache.max_bytes // (2 * self.cache.frame_size)))

    def _prefetch(self, force: bool = False) -> None:
        """Ask the worker for the frames ahead of the playhead that are not cached yet.
        A new request (a new scene, rate or range) replaces the one in progress."""
        state = self.document.state
        if not (self.playing and self.enabled) or state is None:
            return
        scene = state.timeless()
        if scene == self._content and not force:
            return
        n, start = self.frame_count, self.index
        ahead = range(1, min(n, self._ahead()) + 1)
        order = [(start + k) % n for k in ahead] if self.loop else [start + k for k in ahead if start + k < n]
        cached = self.cache.times(scene)
        times = [t for t in map(self.time_of, order) if t not in cached]
        self._clip_id += 1
        self._content, self._pending = scene, set(times)
        if times:
            self.worker.request_clip(scene, times, self._clip_id, self._generation())
        else:
            self.worker.cancel_clip()

    @Slot(int, object, object, float)
    def on_clip_frame(self, clip_id: int, state, frame, _ms: float) -> None:
        if clip_id < self._generator_clips or not self.enabled:
            return  # rendered by the previous model (a frame of an older clip is still right)
        self.cache.put(state, frame)
        self._pending.discard(state.time)
        self._buffer_changed()
        if self.playing and self.waiting:  # the frame playback waits for may be this one
            self._due = time.monotonic()
            self._timer.start(0)

    @Slot(int, float, str)
    def on_clip_failed(self, clip_id: int, t: float, message: str) -> None:
        """The frames before it play; playback stops at it and says why."""
        if clip_id == self._clip_id and self.playing:
            self._failure = (self._content, t, message)

    def on_rendered(self, state, frame) -> None:
        """A frame the window asked for (scrubbing, an edit): keep it for playback."""
        if self.enabled:
            self.cache.put(state, frame)
            self._buffer_changed()

    def _buffer_changed(self) -> None:
        if not self._buffer_timer.isActive():
            self._buffer_timer.start()

    def _hold_playhead(self) -> None:
        """A session opened, or an undo, can put the playhead past the range's end (a session
        saved at 7 s, the range 4 s): the slider showed the last frame and the canvas another.
        The range grows to hold it; shortening the range, which the user asks for, pulls the
        playhead in instead (set_length). Not remembered: the user chose no length."""
        if self.enabled and self.document.state is not None and self._nearest_frame() >= self.frame_count:
            self.length_s = min(MAX_LENGTH_S, (self._nearest_frame() + 1) / self.fps)
            self.changed.emit()

    def _on_state(self, state) -> None:
        self._hold_playhead()
        if self.playing and state.timeless() != self._content:
            self._prefetch()  # an edit: render the new scene's frames ahead
        # Playing or not: undo and redo can land on a scene whose frames are cached already,
        # shown without a render, and the strip must show that scene's frames (coalesced).
        if self.enabled:  # (a still image has no strip: nothing to do on a drag's moves)
            self._buffer_changed()

    def _on_generator(self, info) -> None:
        self.pause()
        self.cache.clear()
        self._clip_id += 1
        self._generator_clips = self._clip_id  # frames of the old model still on their way are dropped
        self.enabled = info.config.time is not None
        self._hold_playhead()
        self.changed.emit()
        self._buffer_changed()
