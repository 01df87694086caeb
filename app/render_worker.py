"""The render worker: the only code that touches the model, on its own QThread.

The GUI thread never waits for it. `request()` and `load()` are called from the GUI thread
and only store the job in a lock-protected slot (one slot for renders, one for loads), so
a burst of 1,000 drag events costs 1,000 slot overwrites and at most a couple of renders:
whatever was pending when the worker comes back is the newest state, and it is always
rendered (the last state of a drag is never lost). Results go back by queued signals.

Requests carry the GUI's increasing id and the generation (load token) they were made
for; a render for another generation than the one loaded is dropped here, so a frame of
the old scene is never drawn with a newly loaded model.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, Signal, Slot


@dataclass(frozen=True)
class GeneratorInfo:
    """What the GUI may know about the loaded generator (never the model itself)."""

    name: str
    config: Any  # models.config.GeneratorConfig
    ref: Any  # models.session.CheckpointRef
    trained: bool

    @property
    def path(self) -> str | None:
        """The checkpoint file; None for an untrained built-in architecture."""
        return self.ref.path


@dataclass
class _Job:
    seq: int  # submission order: a render asked for before a load runs before it
    kind: str  # "render" or "load"
    args: tuple


def preferred_device() -> str:
    """GPU when there is one; STEERGAN_DEVICE overrides (e.g. 'cpu' to compare)."""
    forced = os.environ.get("STEERGAN_DEVICE")
    if forced:
        return forced
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_label(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return device.type.upper()


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def default_render(generator, state):
    from models.render import render

    return render(generator, state, extras=True)


class RenderWorker(QObject):
    frameReady = Signal(int, object, float)  # request id, models.render.Frame, render ms
    failed = Signal(int, str)  # request id, message (e.g. the scene does not fit the model)
    deviceChanged = Signal(str)  # "CPU", "GPU: <name>", or "CPU (GPU out of memory)"
    loaded = Signal(int, object)  # load token, GeneratorInfo
    loadFailed = Signal(int, str)  # load token, CheckpointError message (names file + problem)
    _wake = Signal()  # GUI thread -> worker thread: "there is a job in a slot"

    def __init__(self, device: str | None = None,
                 render_fn: Callable[[Any, Any], Any] | None = None):
        super().__init__()
        self._lock = threading.Lock()
        self._render_job: _Job | None = None
        self._load_job: _Job | None = None
        self._seq = 0
        self._draining = False
        self._stopping = False
        self._device_wanted = device
        self.render_fn = render_fn or default_render  # injectable: tests fake an OOM here
        self.device: Any = None  # torch.device of the model, set on the first load
        self._generator = None
        self._generation = -1
        self._wake.connect(self._drain)

    # ---- GUI thread side: store and wake, never wait ---------------------------------
    def request(self, state, request_id: int, generation: int) -> None:
        self._submit("render", (state, request_id, generation))

    def load(self, token: int, path: str | None, arch: str | None) -> None:
        self._submit("load", (token, path, arch))

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._render_job = self._load_job = None

    def _submit(self, kind: str, args: tuple) -> None:
        with self._lock:
            self._seq += 1
            job = _Job(self._seq, kind, args)
            if kind == "render":
                self._render_job = job  # replaces an older pending render: coalescing
            else:
                self._load_job = job
            wake = not self._draining
            self._draining = True
        if wake:
            self._wake.emit()

    def _take(self) -> _Job | None:
        with self._lock:
            jobs = [j for j in (self._render_job, self._load_job) if j is not None]
            if not jobs or self._stopping:
                self._draining = False
                return None
            job = min(jobs, key=lambda j: j.seq)
            if job.kind == "render":
                self._render_job = None
            else:
                self._load_job = None
            return job

    # ---- worker thread side ----------------------------------------------------------
    @Slot()
    def _drain(self) -> None:
        while (job := self._take()) is not None:
            if job.kind == "load":
                self._do_load(*job.args)
            else:
                self._do_render(*job.args)

    def _do_load(self, token: int, path: str | None, arch: str | None) -> None:
        from models import CheckpointError, ConfigError
        from models.library import open_generator

        device = self._device_wanted or preferred_device()
        try:
            loaded = open_generator(path, device="cpu", arch=arch)
            generator, note = self._place(loaded.generator, device)
        except (CheckpointError, ConfigError) as exc:
            self.loadFailed.emit(token, str(exc))
            return
        except Exception as exc:  # a bug must not kill the worker thread, nor the open scene
            self.loadFailed.emit(token, f"{path or arch}: {type(exc).__name__}: {exc}")
            return
        self._warm_up(generator)
        self._generator, self._generation = generator, token
        self.device = generator.const.device
        info = GeneratorInfo(name=loaded.name, config=generator.config, ref=loaded.ref, trained=loaded.trained)
        self.loaded.emit(token, info)
        self.deviceChanged.emit(device_label(self.device) + note)

    @staticmethod
    def _warm_up(generator) -> None:
        """One throw-away render while "opening": the first forward pass pays for lazy
        initialisation (allocator, kernel selection), which would otherwise land on the
        user's first edit and on the render time shown in the status bar."""
        from models.render import render
        from models.scene import initial_state

        try:
            render(generator, initial_state(generator.config, 0), extras=True)
        except Exception:
            pass  # the real render reports whatever is wrong, with its request id

    def _place(self, generator, device: str):
        """Move the model to the wanted device; no room on the GPU means the CPU."""
        if device == "cpu":
            return generator, ""
        try:
            return generator.to(device), ""
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            return generator.to("cpu"), " (GPU out of memory)"

    def _do_render(self, state, request_id: int, generation: int) -> None:
        if self._generator is None or generation != self._generation:
            return  # made for a model that is no longer (or not yet) loaded: stale
        t0 = time.perf_counter()
        try:
            frame = self._render_with_fallback(state)
        except Exception as exc:
            self.failed.emit(request_id, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            return
        self.frameReady.emit(request_id, frame, (time.perf_counter() - t0) * 1000)

    def _render_with_fallback(self, state):
        try:
            return self.render_fn(self._generator, state)
        except Exception as exc:
            if not is_out_of_memory(exc) or getattr(self.device, "type", "cpu") == "cpu":
                raise
        # Out of GPU memory: carry on, slower, on the CPU, and say so.
        import torch

        self._generator = self._generator.to("cpu")
        self.device = torch.device("cpu")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.deviceChanged.emit("CPU (GPU out of memory)")
        return self.render_fn(self._generator, state)


def start_worker(worker: RenderWorker) -> QThread:
    """Give the worker its own thread (its slots then run there) and start it."""
    thread = QThread()
    thread.setObjectName("render-worker")
    worker.moveToThread(thread)
    thread.start()
    return thread


def stop_worker(worker: RenderWorker, thread: QThread, timeout_ms: int = 10000) -> None:
    """Drop pending jobs, let a render in progress finish, and end the thread."""
    worker.stop()
    thread.quit()
    thread.wait(timeout_ms)
