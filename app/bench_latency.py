"""Speed benchmark of the studio (not a test): `python -m app.bench_latency`.

- startup: from launching a fresh Python process to the first frame painted on the canvas
  (the default checkpoint, offscreen window), median over a few runs;
- drag latency: a real mouse drag on the canvas viewport, from each mouse-move event to the
  canvas painting the frame of the state that event produced. Two ways:
  - "step": one move, wait for its frame, the next move (the latency of one drag step);
  - "paced": moves every --interval-ms (a 60 Hz mouse) whatever the renderer does; for each
    move, the time until a frame that includes it is painted (what a user sees while dragging:
    coalescing means a move may wait for the render in flight).
  Generators above the studio's preview resolution (64 px) show a preview while dragging:
  both are measured with it (the studio's behaviour) and, for comparison, with full frames;
- full frame after the drag: from the release, and from the last move of a drag whose mouse
  then rests with the button down, to the full-quality frame of the final state painted.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

STARTUP_TAG = "FIRST-FRAME-AT"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "max_ms": round(max(ms), 1), "mean_ms": round(statistics.fmean(ms), 1)}


def use_scratch_settings() -> None:
    """Benchmarks change the rate, open files, ...: none of it may reach the user's
    settings (recent files, remembered transport). A throw-away folder and name."""
    import tempfile

    from PySide6.QtCore import QCoreApplication, QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      tempfile.mkdtemp(prefix="steergan-bench-settings-"))
    QCoreApplication.setOrganizationName("SteerGAN-bench")
    QCoreApplication.setApplicationName("bench")


def make_app(arch: str | None, checkpoint: str | None):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from .studio import configure_app, open_initial

    app = QApplication.instance() or QApplication(["steergan-bench"])
    use_scratch_settings()
    configure_app(app)
    from .main_window import MainWindow

    window = MainWindow(remember_layout=False)
    window.show()
    open_initial(window, checkpoint, arch)
    window.confirm_close = lambda: True  # the benchmark's drags are not the user's edits: no question
    return app, window


class PaintClock:
    """Records when the canvas viewport paints, and which frame it showed then."""

    def __init__(self, window):
        from PySide6.QtCore import QEvent, QObject

        clock = self

        class Filter(QObject):
            def eventFilter(self, obj, event):
                if event.type() == QEvent.Type.Paint:
                    frame = window.canvas.frame
                    clock.painted.append((time.perf_counter(), window.canvas.frame_id,
                                          getattr(frame, "preview", False)))
                    if clock.on_paint:
                        clock.on_paint()
                return False

        self.painted: list[tuple[float, int, bool]] = []  # (time, frame id, a preview?)
        self.on_paint = None
        self._filter = Filter()
        window.canvas.viewport().installEventFilter(self._filter)


def wait_painted(app, clock: PaintClock, request_id: int, timeout_s: float = 30.0, full: bool = False) -> float:
    """Run the event loop (no busy wait: the worker needs the CPU) until a paint shows
    request_id or later (`full`: and not a preview); returns that paint's time."""
    from PySide6.QtCore import QEventLoop, QTimer

    def done():
        return next((t for t, fid, preview in clock.painted if fid >= request_id and not (full and preview)), None)

    if done() is None:
        loop = QEventLoop()
        clock.on_paint = lambda: done() is not None and loop.quit()
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        clock.on_paint = None
    t = done()
    if t is None:
        raise SystemExit(f"no frame for request {request_id} after {timeout_s} s")
    return t


def wait_idle(app, window, timeout_s: float = 120.0) -> None:
    """Run the event loop until the worker has nothing left to do (its traces built)."""
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.perf_counter() + timeout_s
    while not window.worker.queue.idle():
        if time.perf_counter() > deadline:
            raise SystemExit(f"the worker was still busy after {timeout_s} s")
        loop = QEventLoop()
        QTimer.singleShot(50, loop.quit)
        loop.exec()


def drag_positions(window, steps: int):
    import math

    from PySide6.QtCore import QPoint

    state = window.document.state
    if not state.objects:
        raise SystemExit("the checkpoint has no objects to drag")
    start = window.canvas.to_widget(*state.objects[0].center).toPoint()
    radius = 0.15 * window.canvas.pixels_per_unit()
    return start, [start + QPoint(round(radius * math.sin(2 * math.pi * i / steps)),
                                  round(radius * (1 - math.cos(2 * math.pi * i / steps))))
                   for i in range(1, steps + 1)]


def bench_steps(app, window, clock: PaintClock, steps: int) -> list[float]:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    vp = window.canvas.viewport()
    start, positions = drag_positions(window, steps)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    latencies = []
    for pos in positions:
        before = window.request_id()
        t0 = time.perf_counter()
        QTest.mouseMove(vp, pos)
        if window.request_id() == before:  # the move changed nothing to render (an earlier
            continue  # paint would count as this one's, with a negative latency)
        latencies.append((wait_painted(app, clock, window.request_id()) - t0) * 1000)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, positions[-1])
    wait_painted(app, clock, window.request_id())
    return latencies


def bench_paced(app, window, clock: PaintClock, steps: int, interval_ms: int) -> list[float]:
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest

    vp = window.canvas.viewport()
    start, positions = drag_positions(window, steps)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    sent: list[tuple[float, int]] = []
    loop = QEventLoop()
    timer = QTimer(interval=interval_ms)

    def move():
        if len(sent) == len(positions):
            timer.stop()
            loop.quit()
            return
        t0 = time.perf_counter()
        QTest.mouseMove(vp, positions[len(sent)])
        sent.append((t0, window.request_id()))

    timer.timeout.connect(move)
    timer.start()
    loop.exec()
    last = wait_painted(app, clock, window.request_id())
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, positions[-1])
    latencies = []
    wait_painted(app, clock, window.request_id(), full=True)  # the release's full frame: not in the next run
    for t0, rid in sent:
        t = next((t for t, fid, _ in clock.painted if fid >= rid and t >= t0), last)
        latencies.append((t - t0) * 1000)
    return latencies


def bench_full_frame(app, window, clock: PaintClock, trials: int, release: bool) -> list[float]:
    """Short drags (a few 60 Hz moves); then either the release, or the mouse resting with
    the button down: the time from that moment to the full frame of the final state."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest

    vp = window.canvas.viewport()
    latencies = []
    for trial in range(trials):
        start, positions = drag_positions(window, 24)
        positions = positions[trial % 12: trial % 12 + 4]
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        for pos in positions:
            QTest.mouseMove(vp, pos)
            loop = QEventLoop()
            QTimer.singleShot(16, loop.quit)
            loop.exec()
        t0 = time.perf_counter()
        if release:
            QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, positions[-1])
        last_id = window.request_id()
        t = wait_painted(app, clock, last_id, full=True)
        while window.request_id() != last_id or window.canvas.frame_state != window.document.state:
            last_id = window.request_id()  # the full frame came with a new request id
            t = wait_painted(app, clock, last_id, full=True)
        latencies.append(max(0.0, t - t0) * 1000)  # 0: the full frame was there before the mouse rested
        if not release:
            QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, positions[-1])
            wait_painted(app, clock, window.request_id(), full=True)
    return latencies


PHASES = ("python_ready", "window_shown", "model_loaded", "first_frame")


def render_cpu_ms(arch: str | None, checkpoint: str | None, preview: int | None, repeats: int = 15) -> dict:
    """CPU time of one render (this thread's, not the wall clock: it hardly changes with what
    else the machine runs), full frame and preview, with the heatmaps and offsets the
    studio asks for, through the traced synthesis as in the studio; median over `repeats`
    renders while an object moves."""
    from dataclasses import replace

    from models.document.scene import initial_state
    from models.io.library import open_generator
    from models.render import latents_for, render
    from models.synthesis import build_trace

    generator = open_generator(checkpoint, arch=arch).generator
    state = initial_state(generator.config, 0)
    for stop in (None, preview):  # the traced synthesis, as the studio's worker runs it
        build_trace(generator, latents_for(generator, state), state.truncation, stop)

    def median_ms(size):
        times = []
        for i in range(repeats + 1):
            moved = replace(state, objects=(replace(state.objects[0], center=(0.3 + 0.01 * i, 0.5)),
                                            *state.objects[1:])) if state.objects else state
            t0 = time.thread_time()
            render(generator, moved, extras=True, preview=size)
            if i:  # the first one pays for lazy initialisation
                times.append((time.thread_time() - t0) * 1000)
        return round(statistics.median(times), 1)

    out = {"full_frame": median_ms(None)}
    if preview is not None and generator.config.resolution > preview:
        out[f"preview_{preview}px"] = median_ms(preview)
    return out


def startup_child(arch: str | None, checkpoint: str | None) -> int:
    """Runs in a fresh process: open the studio; print the wall time (time.time()) at which
    each phase ended: Python and this module imported, the window shown (Qt, pyqtgraph and
    the studio imported, the window built), the model loaded on the worker thread (torch
    imported, checkpoint read, one render), the first frame painted."""
    marks = {"python_ready": time.time()}
    app, window = make_app(arch, checkpoint)
    marks["window_shown"] = time.time()
    window.document.generatorChanged.connect(lambda _: marks.setdefault("model_loaded", time.time()))
    clock = PaintClock(window)
    wait_painted(app, clock, 1, timeout_s=120)
    marks["first_frame"] = time.time() - (time.perf_counter() - clock.painted[-1][0])
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads: less sensitive to load than wall time
    for name in PHASES:
        print(f"{STARTUP_TAG} {name} {marks[name]:.6f}", flush=True)
    print(f"{STARTUP_TAG} cpu_s {usage.ru_utime + usage.ru_stime:.6f}", flush=True)
    window.close()
    return 0


def evict_page_cache(paths) -> None:
    """A cold start: drop the files' pages from the OS cache (what a start after a reboot
    reads from disk). Pages other processes have mapped stay; nothing needs root."""
    for root in paths:
        for folder, _, names in os.walk(root):
            for name in names:
                try:
                    fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                except OSError:
                    pass
                finally:
                    os.close(fd)


def cold_paths() -> list[str]:
    import importlib.util
    from pathlib import Path

    paths = [str(Path(__file__).resolve().parent.parent)]  # the studio and its checkpoints
    for package in ("torch", "PySide6", "shiboken6", "pyqtgraph", "numpy"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            paths += list(spec.submodule_search_locations)
    return paths


def bench_startup(arch: str | None, checkpoint: str | None, runs: int, cold: bool = False) -> list[dict]:
    cmd = [sys.executable, "-m", "app.bench_latency", "--startup-child"]
    cmd += ["--arch", arch] if arch else []
    cmd += ["--checkpoint", checkpoint] if checkpoint else []
    results = []
    for _ in range(runs):
        if cold:
            evict_page_cache(cold_paths())
        t0 = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        marks = dict(line.split()[1:] for line in out.stdout.splitlines() if line.startswith(STARTUP_TAG))
        if out.returncode != 0 or set(marks) != {*PHASES, "cpu_s"}:
            raise SystemExit(f"startup run failed:\n{out.stderr}")
        results.append({**{name: round(float(marks[name]) - t0, 2) for name in PHASES},
                        "cpu_s": round(float(marks["cpu_s"]), 2)})
    return results


def startup_summary(runs: list[dict]) -> dict:
    return {"runs_s": [r["first_frame"] for r in runs],
            "median_s": round(statistics.median(r["first_frame"] for r in runs), 2) if runs else None,
            "median_phase_end_s": {name: round(statistics.median(r[name] for r in runs), 2)
                                   for name in PHASES} if runs else None,
            "cpu_s_to_first_frame": [r["cpu_s"] for r in runs]}


def main(argv: list[str] | None = None) -> int:
    from .studio import configure_render_threads

    configure_render_threads()  # as `steergan` does; startup children inherit it
    parser = argparse.ArgumentParser(prog="python -m app.bench_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="drag steps per measurement (default 100)")
    parser.add_argument("--interval-ms", type=int, default=16, help="mouse interval of the paced drag (16: 60 Hz)")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--cold-runs", type=int, default=0,
                        help="start-ups after dropping the files from the OS cache (default 0)")
    parser.add_argument("--startup-only", action="store_true", help="measure the start-up, no drags")
    parser.add_argument("--full-frame-trials", type=int, default=20,
                        help="drags timed from release (and from rest) to the full frame (default 20)")
    parser.add_argument("--arch", help="an untrained built-in architecture instead of the default checkpoint")
    parser.add_argument("--checkpoint", help="a checkpoint instead of the default one")
    parser.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.startup_child:
        return startup_child(args.arch, args.checkpoint)

    cold = bench_startup(args.arch, args.checkpoint, args.cold_runs, cold=True) if args.cold_runs else []
    warm = bench_startup(args.arch, args.checkpoint, args.startup_runs) if args.startup_runs else []
    if args.startup_only:
        print(json.dumps({"arch": args.arch, "checkpoint": args.checkpoint, "cold_start": startup_summary(cold),
                          "warm_start": startup_summary(warm)}, indent=2))
        return 0
    app, window = make_app(args.arch, args.checkpoint)
    clock = PaintClock(window)
    wait_painted(app, clock, 1, timeout_s=120)
    bench_steps(app, window, clock, 10)  # warm-up: allocator, first-use paths (preview and full)
    wait_idle(app, window)  # the worker traces the synthesis when idle (models/synthesis.py)
    steps = bench_steps(app, window, clock, args.steps)
    paced = bench_paced(app, window, clock, args.steps, args.interval_ms)
    released = bench_full_frame(app, window, clock, args.full_frame_trials, release=True)
    rested = bench_full_frame(app, window, clock, args.full_frame_trials, release=False)
    preview_size = window.preview_resolution
    previews = preview_size is not None and window.document.config.resolution > preview_size
    if previews:  # the same drags rendering full frames throughout, for comparison
        window.preview_resolution = None
        full_steps = bench_steps(app, window, clock, args.steps)
        full_paced = bench_paced(app, window, clock, args.steps, args.interval_ms)
    from models.tools.bench import machine

    result = {
        "checkpoint": window.document.info.name, "device": window.device_label.text(),
        "machine": machine(),
        "cold_start_to_first_frame": startup_summary(cold),
        "warm_start_to_first_frame": startup_summary(warm),
        "resolution": window.document.config.resolution,
        "drag_preview_resolution": preview_size if previews else None,
        "drag_step_latency": summary(steps),
        f"drag_paced_{args.interval_ms}ms_latency": summary(paced),
        "full_frame_after_release": summary(released),
        "full_frame_after_mouse_rests": summary(rested),
        "targets": {"p50_ms": 60, "p95_ms": 120, "full_frame_ms": 150, "startup_s": 3},
    }
    result["render_cpu_ms"] = render_cpu_ms(args.arch, args.checkpoint, preview_size)
    if previews:
        result["drag_step_latency_full_frames"] = summary(full_steps)
        result[f"drag_paced_{args.interval_ms}ms_latency_full_frames"] = summary(full_paced)
    window.close()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
