"""Speed benchmark of the studio (not a test): `python -m app.bench_latency`.

- startup: from launching a fresh Python process to the first frame painted on the canvas
  (the default checkpoint, offscreen window), median over a few runs;
- drag latency: a real mouse drag on the canvas viewport, from each mouse-move event to the
  canvas painting the frame of the state that event produced. Two ways:
  - "step": one move, wait for its frame, the next move (the latency of one drag step);
  - "paced": moves every --interval-ms (a 60 Hz mouse) whatever the renderer does; for each
    move, the time until a frame that includes it is painted (what a user sees while dragging:
    coalescing means a move may wait for the render in flight).
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
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
    return app, window


class PaintClock:
    """Records when the canvas viewport paints, and which frame it showed then."""

    def __init__(self, window):
        from PySide6.QtCore import QEvent, QObject

        clock = self

        class Filter(QObject):
            def eventFilter(self, obj, event):
                if event.type() == QEvent.Type.Paint:
                    clock.painted.append((time.perf_counter(), window.canvas.frame_id))
                    if clock.on_paint:
                        clock.on_paint()
                return False

        self.painted: list[tuple[float, int]] = []
        self.on_paint = None
        self._filter = Filter()
        window.canvas.viewport().installEventFilter(self._filter)


def wait_painted(app, clock: PaintClock, request_id: int, timeout_s: float = 30.0) -> float:
    """Run the event loop (no busy wait: the worker needs the CPU) until a paint shows
    request_id or later; returns that paint's time."""
    from PySide6.QtCore import QEventLoop, QTimer

    def done():
        return next((t for t, fid in clock.painted if fid >= request_id), None)

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
        t0 = time.perf_counter()
        QTest.mouseMove(vp, pos)
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
    for t0, rid in sent:
        t = next((t for t, fid in clock.painted if fid >= rid and t >= t0), last)
        latencies.append((t - t0) * 1000)
    return latencies


def startup_child(arch: str | None, checkpoint: str | None) -> int:
    """Runs in a fresh process: open the studio, print the wall time of the first paint."""
    app, window = make_app(arch, checkpoint)
    clock = PaintClock(window)
    wait_painted(app, clock, 1, timeout_s=120)
    print(f"{STARTUP_TAG} {time.time() - (time.perf_counter() - clock.painted[-1][0]):.6f}", flush=True)
    window.close()
    return 0


def bench_startup(arch: str | None, checkpoint: str | None, runs: int) -> list[float]:
    cmd = [sys.executable, "-m", "app.bench_latency", "--startup-child"]
    cmd += ["--arch", arch] if arch else []
    cmd += ["--checkpoint", checkpoint] if checkpoint else []
    times = []
    for _ in range(runs):
        t0 = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        line = next((l for l in out.stdout.splitlines() if l.startswith(STARTUP_TAG)), None)
        if out.returncode != 0 or line is None:
            raise SystemExit(f"startup run failed:\n{out.stderr}")
        times.append(float(line.split()[1]) - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    from .studio import configure_render_threads

    configure_render_threads()  # as `steergan` does; startup children inherit it
    parser = argparse.ArgumentParser(prog="python -m app.bench_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="drag steps per measurement (default 100)")
    parser.add_argument("--interval-ms", type=int, default=16, help="mouse interval of the paced drag (16: 60 Hz)")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--arch", help="an untrained built-in architecture instead of the default checkpoint")
    parser.add_argument("--checkpoint", help="a checkpoint instead of the default one")
    parser.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.startup_child:
        return startup_child(args.arch, args.checkpoint)

    startup = bench_startup(args.arch, args.checkpoint, args.startup_runs) if args.startup_runs else []
    app, window = make_app(args.arch, args.checkpoint)
    clock = PaintClock(window)
    wait_painted(app, clock, 1, timeout_s=120)
    bench_steps(app, window, clock, 10)  # warm-up: allocator, first-use paths
    steps = bench_steps(app, window, clock, args.steps)
    paced = bench_paced(app, window, clock, args.steps, args.interval_ms)
    from models.bench import machine

    result = {
        "checkpoint": window.document.info.name, "device": window.device_label.text(),
        "machine": machine(),
        "startup_to_first_frame_s": {"runs": [round(t, 2) for t in startup],
                                     "median": round(statistics.median(startup), 2) if startup else None},
        "drag_step_latency": summary(steps),
        f"drag_paced_{args.interval_ms}ms_latency": summary(paced),
        "targets": {"p50_ms": 60, "p95_ms": 120, "startup_s": 3},
    }
    window.close()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
