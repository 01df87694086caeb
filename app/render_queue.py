"""What the render worker does next: the queueing rules, in plain Python (no Qt), so that
tests drive them without a thread or an event loop (app/render_worker.py is the Qt side).

Producers (the GUI thread) call submit(), set_clip() and cancel_clip(); one consumer (the
worker thread) calls take() until it returns None, running each job and then done(job).

- One slot per kind ("render", "load", "export", "fit"): a newer job replaces the one waiting
  there, so a burst of 1,000 drag events costs 1,000 slot overwrites and at most a couple
  of renders, and the newest state is always rendered.
- Between slots, submission order: a render asked for before a load runs before it.
- A clip (frames rendered ahead for playback) has the lowest priority: one frame per
  take(), and any render, load or export that arrives meanwhile goes first, so an edit is
  never queued behind the frames it makes stale. A newer clip replaces the older one.
- Traces (models/synthesis.py) are built only when nothing else waits; a new plan
  replaces the old one.
- After stop(), take() returns None: pending jobs are dropped, and the export in progress
  (if any) is cancelled.

Waking: submit() and set_clip() return True when the consumer is idle and must be woken;
False while it is draining (it will find the job itself). take() returning None is the
consumer going idle, so no job can land between "nothing left" and "asleep" unseen.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from models.document.scene import SceneState

SLOT_KINDS = ("render", "load", "export", "fit")


@dataclass
class Job:
    seq: int  # submission order between the slots; 0 for clip frames and traces
    kind: str  # "render", "load", "export", "fit", "clip" or "trace"
    args: tuple
    cancel: threading.Event | None = field(default=None, compare=False)  # stop() sets it while the job runs


@dataclass
class Clip:
    clip_id: int
    scene: SceneState  # its frames are this scene at each of `times`
    times: list  # the times of the frames to render ahead, in display order
    generation: int
    next: int = 0


class RenderQueue:
    """Thread-safe: every method may be called from any thread (take() from one)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._slots: dict[str, Job | None] = dict.fromkeys(SLOT_KINDS)
        self._clip: Clip | None = None
        self._trace_todo: list[tuple] = []  # the args of the trace jobs, in order
        self._running: Job | None = None  # taken and not yet done()
        self._seq = 0
        self._draining = False  # the consumer is awake and will take() again
        self._stopping = False

    # ---- producers -------------------------------------------------------------------
    def submit(self, kind: str, args: tuple, cancel: threading.Event | None = None) -> bool:
        """Put a job in its kind's slot, replacing an older one. Returns: wake the consumer."""
        if kind not in SLOT_KINDS:
            raise ValueError(f"no slot for {kind!r} jobs (clips: set_clip, traces: plan_traces)")
        with self._lock:
            self._seq += 1
            self._slots[kind] = Job(self._seq, kind, args, cancel)
            return self._wake_locked()

    def set_clip(self, clip_id: int, scene, times: list, generation: int) -> bool:
        """Render the scene at these times ahead, in order, whenever nothing else waits; it
        replaces any older clip (no times: no clip). Returns: wake the consumer."""
        with self._lock:
            self._clip = Clip(clip_id, scene, list(times), generation) if times else None
            if not times:
                return False
            self._seq += 1  # as a submission, though the clip's frames carry no order of their own
            return self._wake_locked()

    def cancel_clip(self, clip_id: int | None = None) -> None:
        """Drop the clip (only if it is still `clip_id`, when given: a newer one stays)."""
        with self._lock:
            if self._clip is not None and (clip_id is None or self._clip.clip_id == clip_id):
                self._clip = None

    def plan_traces(self, todo: list[tuple]) -> None:
        """The trace jobs' args to run when idle; replaces the older plan. Called by the
        consumer while it drains (it wakes no one)."""
        with self._lock:
            self._trace_todo = list(todo)

    def stop(self) -> None:
        """Drop every pending job and cancel the running one (if it can be: exports, fits)."""
        with self._lock:
            self._stopping = True
            self._slots = dict.fromkeys(SLOT_KINDS)
            self._clip = None
            self._trace_todo = []
            running = self._running
        if running is not None and running.cancel is not None:
            running.cancel.set()  # an export in progress ends now and leaves no file

    def _wake_locked(self) -> bool:
        wake = not self._draining
        self._draining = True
        return wake

    def idle(self) -> bool:
        """Nothing waits and nothing runs (traces included): e.g. a benchmark waits for it."""
        with self._lock:
            return not self._draining and self._running is None

    # ---- the consumer ----------------------------------------------------------------
    def take(self) -> Job | None:
        """The next job, or None: nothing left (the consumer is idle until woken)."""
        with self._lock:
            jobs = [j for j in self._slots.values() if j is not None]
            if self._stopping or not (jobs or self._clip or self._trace_todo):
                self._draining = False
                return None
            if jobs:
                job = min(jobs, key=lambda j: j.seq)
                self._slots[job.kind] = None
            elif self._clip is not None:  # only the clip is left: its next frame
                clip = self._clip
                t = clip.times[clip.next]
                clip.next += 1
                if clip.next == len(clip.times):
                    self._clip = None
                job = Job(0, "clip", (clip.clip_id, clip.scene, t, clip.generation))
            else:  # idle: prepare a trace
                job = Job(0, "trace", self._trace_todo.pop(0))
            self._running = job
            return job

    def done(self, job: Job) -> None:
        """The job has finished (stop() no longer cancels it)."""
        with self._lock:
            if self._running is job:
                self._running = None
