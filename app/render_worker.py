"""The render worker: the only code that touches the model, on its own QThread.

The GUI thread never waits for it: `request()`, `load()`, `request_clip()`,
`export_video()` and `fit_picture()` only put the job in the RenderQueue
(app/render_queue.py: which job runs next, coalescing to the newest, clips and traces
when nothing else waits) and wake the worker if it sleeps. Results go back by queued signals.

Requests carry the GUI's increasing id and the generation (load token) they were made
for; a render for another generation than the one loaded is dropped here, so a frame of
the old scene is never drawn with a newly loaded model. A video export runs to the end
(or until its cancel event is set), streaming frames to the encoder; so does fitting a
picture (app/fit_worker.py). A scene fitted to a picture is rendered, wherever this
worker renders it, with the fit file it names (loaded once: fit_worker.FitCache).

torch and the model modules are imported inside the methods that run on the worker thread:
`steergan` shows its window before torch is loaded (start-up, README).

The catch-alls log the traceback (the "steergan.worker" logger: app/logs.py) and report a
short message by signal; a failed job never ends the worker.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from PySide6.QtCore import QObject, QThread, Signal, Slot

from models.config import ConfigError, GeneratorConfig
from models.document.fileio import ExportError
from models.document.scene import SceneState, initial_state
from models.document.session import CheckpointRef

from .cpu_threads import ThreadAdapter, load_average
from .fit_worker import FitCache, run_fit
from .render_queue import RenderQueue

if TYPE_CHECKING:  # torch and the networks load on the worker, after the window shows (start-up)
    import torch

    from models.nets.generator import Generator
    from models.render import Frame

T = TypeVar("T")

logger = logging.getLogger("steergan.worker")


@dataclass(frozen=True)
class GeneratorInfo:
    """What the GUI may know about the loaded generator (never the model itself)."""

    name: str
    config: GeneratorConfig
    ref: CheckpointRef
    trained: bool

    @property
    def path(self) -> str | None:
        """The checkpoint file; None for an untrained built-in architecture."""
        return self.ref.path


@dataclass(frozen=True)
class VideoJob:
    """One video export: the scene (its edits apply to every frame) and the file's shape."""

    path: str
    state: SceneState
    seconds: float
    fps: float
    size: int | None = None  # None: the generator's resolution
    start: float = 0.0


def preferred_device() -> tuple[str, str]:
    """(device, note): GPU when there is one; STEERGAN_DEVICE overrides (e.g. 'cpu' to
    compare). A STEERGAN_DEVICE this machine cannot run on (a typo, cuda without a GPU) gives
    the CPU and a note saying why: handed to torch, it failed every open, each blaming the
    checkpoint file ("AssertionError: Torch not compiled with CUDA enabled"), and the studio
    stayed empty."""
    import torch

    from models.render import usable_device

    forced = os.environ.get("STEERGAN_DEVICE")
    if not forced:
        return ("cuda" if torch.cuda.is_available() else "cpu"), ""
    try:
        return usable_device(forced), ""
    except ValueError as exc:
        return "cpu", f"STEERGAN_DEVICE={exc}"


def device_label(device: torch.device | str) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return device.type.upper()


def default_render(generator, state, fit=None):
    from models.render import render

    return render(generator, state, extras=True, fit=fit)


def preview_render(generator, state, resolution: int, fit=None):
    """The drag preview: the synthesis stops at `resolution` (the skip architecture's RGB
    image there), upsampled to the full size; Frame.preview says so."""
    from models.render import render

    return render(generator, state, extras=True, preview=resolution, fit=fit)


class RenderWorker(QObject):
    frameReady = Signal(int, object, float)  # request id, models.render.Frame, render ms
    failed = Signal(int, str)  # request id, message (e.g. the scene does not fit the model)
    deviceChanged = Signal(str)  # "CPU", "GPU: <name>", "CPU (GPU out of memory)", "CPU (STEERGAN_DEVICE=...)"
    loaded = Signal(int, object)  # load token, GeneratorInfo
    loadFailed = Signal(int, str)  # load token, CheckpointError message (names file + problem)
    clipFrameReady = Signal(int, object, object, float)  # clip id, SceneState, Frame, render ms
    clipFailed = Signal(int, float, str)  # clip id, time of the frame, message: rendering ahead stopped
    exportProgress = Signal(int, int, int)  # export id, frames done, frames in all
    exportFinished = Signal(int, str, str)  # export id, "written" / "cancelled" / "failed", message
    fitPicture = Signal(int, object)  # fit id, the picture as it is fitted ([S, S, 3] uint8)
    fitProgress = Signal(int, str, int, int, float, object)  # fit id, stage, step, steps, PSNR dB, image or None
    fitFinished = Signal(int, str, object, str)  # fit id, "fitted" / "cancelled" / "failed", FitOutcome, message
    fitUnavailable = Signal(str)  # a fitted scene renders without its fit file: why (once per file)
    _wake = Signal()  # GUI thread -> worker thread: "there is a job in a slot"

    def __init__(self, device: str | None = None,
                 render_fn: Callable[[Generator, SceneState], Frame] | None = None):
        super().__init__()
        self.queue = RenderQueue()  # every decision about which job runs next
        self._device_wanted = device
        self.render_fn = render_fn or default_render  # injectable: tests fake an OOM here
        self.device: torch.device | None = None  # the model's, set on the first load
        self._generator = None
        self._generation = -1
        self._checkpoint_sha256: str | None = None  # the loaded checkpoint's (fit files name it)
        # The open session file: a fitted scene's fit file is looked for beside it first.
        # Set by the GUI before it asks for a render of that session's scene.
        self.fit_near: str | None = None
        self.fits = FitCache(self.fitUnavailable.emit)
        self._warm = None  # (state, frame, ms) of the warm-up render, until the first render request
        self._planned_structure: tuple | None = None  # what _plan_traces last planned for
        # Traced synthesis (models/synthesis.py) for the newest state's structure: the full frame
        # and these previews, built when nothing else waits (STEERGAN_TRACE=0: never).
        self.trace_previews: tuple[int, ...] = ()
        self.trace_when_idle = os.environ.get("STEERGAN_TRACE", "1") != "0"
        self._wake.connect(self._drain)
        self._threads = ThreadAdapter()  # fewer CPU threads while the machine is busy (issue 25)

    # ---- GUI thread side: queue and wake, never wait ---------------------------------
    def request(self, state, request_id: int, generation: int, preview: int | None = None) -> None:
        """Render `state`; `preview`: only up to that resolution, upsampled (while dragging)."""
        self._wake_if(self.queue.submit("render", (state, request_id, generation, preview)))

    def load(self, token: int, path: str | None, arch: str | None) -> None:
        self._wake_if(self.queue.submit("load", (token, path, arch)))

    def request_clip(self, scene, times: list, clip_id: int, generation: int) -> None:
        """Render the scene at these times ahead, in order, whenever nothing else waits.
        (The states are made here, one per frame, not by the GUI thread up front.)"""
        self._wake_if(self.queue.set_clip(clip_id, scene, times, generation))

    def cancel_clip(self, clip_id: int | None = None) -> None:
        """Drop the clip (only if it is still `clip_id`, when given)."""
        self.queue.cancel_clip(clip_id)

    def export_video(self, export_id: int, job: VideoJob, generation: int) -> threading.Event:
        """Start an export; returns the event that cancels it (set it from any thread)."""
        cancel = threading.Event()
        self._wake_if(self.queue.submit("export", (export_id, job, generation, cancel), cancel=cancel))
        return cancel

    def fit_picture(self, fit_id: int, path: str, options: dict, generation: int) -> threading.Event:
        """Fit the generator to the picture at `path` (options: FitSettings fields); returns
        the event that cancels it (set it from any thread: the fit stops within a step)."""
        cancel = threading.Event()
        self._wake_if(self.queue.submit("fit", (fit_id, path, options, generation, cancel), cancel=cancel))
        return cancel

    def stop(self) -> None:
        """Drop pending jobs; an export in progress is cancelled (and leaves no file)."""
        self.queue.stop()

    def _wake_if(self, wake: bool) -> None:
        if wake:  # the worker is idle; while it drains, it finds the job itself
            self._wake.emit()

    # ---- worker thread side ----------------------------------------------------------
    @Slot()
    def _drain(self) -> None:
        run = {"load": self._do_load, "render": self._do_render, "clip": self._do_clip_frame,
               "trace": self._do_trace, "export": self._do_export, "fit": self._do_fit}
        while (job := self.queue.take()) is not None:
            try:
                run[job.kind](*job.args)
            finally:
                self.queue.done(job)

    def _do_load(self, token: int, path: str | None, arch: str | None) -> None:
        from models.io.checkpoint import CheckpointError
        from models.io.library import open_generator

        device, why_cpu = (self._device_wanted, "") if self._device_wanted else preferred_device()
        try:
            loaded = open_generator(path, device="cpu", arch=arch)
            generator, note = self._place(loaded.generator, device)
        except (CheckpointError, ConfigError) as exc:
            self.loadFailed.emit(token, str(exc))
            return
        except Exception as exc:  # a bug must not kill the worker thread, nor the open scene
            logger.exception("loading %s failed", path or arch)
            self.loadFailed.emit(token, f"{path or arch}: {type(exc).__name__}: {exc}")
            return
        self._warm = self._warm_up(generator)
        self._generator, self._generation = generator, token
        self._checkpoint_sha256 = loaded.ref.sha256
        self.fits.clear()
        if self._warm is not None:
            self._plan_traces(self._warm[0])
        self.device = generator.const.device
        info = GeneratorInfo(name=loaded.name, config=generator.config, ref=loaded.ref, trained=loaded.trained)
        self.loaded.emit(token, info)
        if why_cpu:
            logger.warning("rendering on the CPU: %s", why_cpu)
            note = f" ({why_cpu})"
        self.deviceChanged.emit(device_label(self.device) + note)

    def _warm_up(self, generator):
        """One render while "opening": the first forward pass pays for lazy initialisation
        (allocator, kernel selection), which would otherwise land on the user's first edit
        and on the render time shown in the status bar. It renders the scene a fresh open
        shows (seed 0), so that the first frame is this one, not a second render (start-up:
        one render sooner). Returns (state, frame, ms), or None."""

        if self.render_fn is not default_render:
            return None  # an injected render (tests) must see every request
        state = initial_state(generator.config, 0)
        t0 = time.perf_counter()
        try:
            return state, default_render(generator, state), (time.perf_counter() - t0) * 1000
        except Exception:
            logger.exception("the warm-up render failed (the first render will report it)")
            return None  # the real render reports whatever is wrong, with its request id

    def _place(self, generator, device: str):
        """Move the model to the wanted device; no room on the GPU means the CPU."""
        if device == "cpu":
            return generator, ""
        try:
            return generator.to(device), ""
        except Exception as exc:
            from models.render import is_out_of_memory

            if not is_out_of_memory(exc):
                raise
            logger.warning("no room for the model on %s: it runs on the CPU", device, exc_info=True)
            return generator.to("cpu"), " (GPU out of memory)"

    def _do_render(self, state, request_id: int, generation: int, preview: int | None = None) -> None:
        if self._generator is None or generation != self._generation:
            return  # made for a model that is no longer (or not yet) loaded: stale
        warm, self._warm = self._warm, None
        if warm is not None and preview is None and warm[0] == state:  # rendered while opening
            self.frameReady.emit(request_id, warm[1], warm[2])
            return
        if self.device is not None and self.device.type == "cpu":
            changed = self._threads.adapt()
            if changed is not None:
                logger.info("render threads: %d (load average %.1f)", changed, load_average() or 0.0)
        t0 = time.perf_counter()
        try:
            frame = self._with_fallback(lambda g: self._render(g, state, preview))
        except Exception as exc:
            logger.exception("render %d failed", request_id)
            self.failed.emit(request_id, f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
            return
        self.frameReady.emit(request_id, frame, (time.perf_counter() - t0) * 1000)
        self._plan_traces(state)

    def _render(self, generator, state, preview: int | None = None):
        """The frame of `state`; a scene fitted to a picture with its fit file (and the
        tuned copy of the generator, if the fit tuned the weights)."""
        use, fit = self._fitted(generator, state)
        if fit is None:  # every other scene: exactly as before fits existed
            return self.render_fn(generator, state) if preview is None else preview_render(generator, state, preview)
        return default_render(use, state, fit) if preview is None else preview_render(use, state, preview, fit)

    def _fitted(self, generator, state):
        """(the generator to render `state` with, its fit file or None)."""
        return self.fits.resolve(state, generator, self.fit_near, self._checkpoint_sha256)

    def _plan_traces(self, state) -> None:
        """Queue the traces this state's renders would use and that do not exist yet."""
        if not self.trace_when_idle or self.render_fn is not default_render or self._generator is None:
            return
        from models.render import latents_for
        from models.synthesis import has_trace

        generator = self._generator
        # A trace fits every state of one model, device and truncation class (1 or not): this
        # runs after every render (each mouse move of a drag), so only a new structure is
        # looked at, not the latents of each state.
        structure = (self._generation, str(generator.const.device), state.truncation == 1.0, state.fit)
        if structure == self._planned_structure:
            return
        self._planned_structure = structure
        generator, fit = self._fitted(generator, state)  # a fitted scene: its styles are inputs too
        lat = latents_for(generator, state, generator.const.device, fit)
        stops = [None, *(p for p in self.trace_previews if p < generator.config.resolution)]
        # The newest state's structure replaces an older plan.
        self.queue.plan_traces([(state, stop) for stop in stops
                                if not has_trace(generator, lat, state.truncation, stop)])

    def _do_trace(self, state, stop_at: int | None) -> None:
        from models.render import latents_for
        from models.synthesis import build_trace

        if self._generator is None:
            return
        generator, fit = self._fitted(self._generator, state)
        try:
            build_trace(generator, latents_for(generator, state, generator.const.device, fit), state.truncation,
                        stop_at)
        except Exception:  # the state does not fit (a stale plan): its render says what is wrong
            logger.exception("tracing the synthesis failed (stop at %s)", stop_at)

    def _do_clip_frame(self, clip_id: int, scene, t: float, generation: int) -> None:
        from dataclasses import replace

        if self._generator is None or generation != self._generation:
            return
        state = replace(scene, time=t)
        t0 = time.perf_counter()
        try:
            frame = self._with_fallback(lambda g: self._render(g, state))
        except Exception as exc:
            logger.exception("clip %d: the frame at %.3f s failed", clip_id, t)
            self.cancel_clip(clip_id)  # the rest of it would most likely fail the same way
            self.clipFailed.emit(clip_id, t, f"the frame at {t:.3f} s: {type(exc).__name__}: {exc}")
            return
        self.clipFrameReady.emit(clip_id, state, frame, (time.perf_counter() - t0) * 1000)

    def _do_export(self, export_id: int, job: VideoJob, generation: int, cancel: threading.Event) -> None:
        from models.io.video import Cancelled, frame_count, frames, write_video
        from models.render import render

        if self._generator is None or generation != self._generation:
            self.exportFinished.emit(export_id, "failed", f"{job.path}: the checkpoint changed before the export began")
            return
        total = frame_count(job.seconds, job.fps)

        def render_one(generator, state):
            use, fit = self._fitted(generator, state)
            return render(use, state, fit=fit)

        source = frames(None, job.state, job.seconds, job.fps, size=job.size, start=job.start,
                        render_fn=lambda _g, s: self._with_fallback(lambda g: render_one(g, s)))
        try:
            write_video(job.path, source, job.fps, total, cancel=cancel.is_set,
                        progress=lambda done, n: self.exportProgress.emit(export_id, done, n))
        except Cancelled as exc:
            self.exportFinished.emit(export_id, "cancelled", str(exc))
        except ExportError as exc:
            self.exportFinished.emit(export_id, "failed", str(exc))
        except Exception as exc:  # a render failed mid-video: no file, and the worker lives on
            logger.exception("export %d to %s failed", export_id, job.path)
            self.exportFinished.emit(export_id, "failed", f"{job.path}: {type(exc).__name__}: {exc}")
        else:
            self.exportFinished.emit(export_id, "written", f"{job.path}: {total} frames at {job.fps:g} fps")

    def _do_fit(self, fit_id: int, path: str, options: dict, generation: int, cancel: threading.Event) -> None:
        from models.document.fileio import FileError
        from models.fit.optimize import FitCancelled

        if self._generator is None or generation != self._generation:
            self.fitFinished.emit(fit_id, "failed", None, f"{path}: the checkpoint changed before the fit began")
            return
        try:
            outcome = run_fit(self._generator, self._checkpoint_sha256, path, options, cancel.is_set,
                              lambda picture: self.fitPicture.emit(fit_id, picture),
                              lambda *step: self.fitProgress.emit(fit_id, *step))
            self.fits.add(outcome.fit, self._generator)  # its first frame needs no file read
        except FitCancelled:
            self.fitFinished.emit(fit_id, "cancelled", None, f"{path}: the fit was cancelled")
        except FileError as exc:  # the picture, the backbone or the fit file: each names its file
            self.fitFinished.emit(fit_id, "failed", None, str(exc))
        except ValueError as exc:  # a generator that cannot be fitted (video)
            self.fitFinished.emit(fit_id, "failed", None, f"{path}: {exc}")
        except Exception as exc:  # a bug must not kill the worker, nor touch the open scene
            logger.exception("fitting %s failed", path)
            self.fitFinished.emit(fit_id, "failed", None, f"{path}: {type(exc).__name__}: {exc}")
        else:
            self.fitFinished.emit(fit_id, "fitted", outcome, f"{path}: fitted")

    def _with_fallback(self, fn: Callable[[Generator], T]) -> T:
        """fn(generator); out of GPU memory, the model moves to the CPU and fn runs again."""
        try:
            return fn(self._generator)
        except Exception as exc:
            from models.render import is_out_of_memory

            if not is_out_of_memory(exc) or getattr(self.device, "type", "cpu") == "cpu":
                raise
            logger.warning("out of GPU memory: the model moves to the CPU", exc_info=True)
        # Out of GPU memory: carry on, slower, on the CPU, and say so.
        import torch

        self._generator = self._generator.to("cpu")
        self.device = torch.device("cpu")
        self.fits.clear()  # tuned copies of fitted scenes were made on the GPU
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self.deviceChanged.emit("CPU (GPU out of memory)")
        return fn(self._generator)


def start_worker(worker: RenderWorker) -> QThread:
    """Give the worker its own thread (its slots then run there) and start it."""
    thread = QThread()
    thread.setObjectName("render-worker")
    worker.moveToThread(thread)
    thread.start()
    return thread


def stop_worker(worker: RenderWorker, thread: QThread, timeout_ms: int = 60000) -> None:
    """Drop pending jobs, cancel an export, let a render in progress (or the encoder's
    last frames) finish, and end the thread. The wait is long because the thread must
    not outlive Qt, and a cancelled MP4 is only removed once the encoder has stopped."""
    worker.stop()
    thread.quit()
    thread.wait(timeout_ms)
