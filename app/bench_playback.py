"""Playback benchmark of the studio (not a test): `python -m app.bench_playback [CHECKPOINT]`.

Opens a video checkpoint (default: the bundled clips model) in an offscreen window, plays a
loop at the chosen rate and measures, from the frames the canvas shows:
- first pass: the worker renders ahead while frames are shown (rate limited by rendering);
- second pass: every frame comes from the cache (rate limited by the timer and painting).
Prints one JSON object: frames per second of each pass and the spread of frame intervals.
"""
from __future__ import annotations

import argparse
import json
import time

from .bench_latency import make_app, summary


def play_passes(app, window, passes: int, timeout_s: float) -> list[list[float]]:
    """Show times (perf_counter) of each frame, per pass of the loop."""
    shown: list[tuple[float, float]] = []
    window.frameShown.connect(lambda _id: shown.append((time.perf_counter(), window.canvas.frame_state.time)))
    window.playback.go_to(0)
    app.processEvents()
    shown.clear()
    window.playback.play()
    deadline = time.perf_counter() + timeout_s
    while sum(1 for _, t in shown if t == 0.0) <= passes and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)
    window.playback.pause()
    out, current = [], []
    for at, t in shown:
        if t == 0.0 and current:
            out.append(current)
            current = []
        current.append(at)
    return out[:passes]


def rate(times: list[float]) -> dict:
    gaps = [(b - a) * 1000 for a, b in zip(times, times[1:])]
    return {"frames": len(times), "fps": round((len(times) - 1) / (times[-1] - times[0]), 1),
            "interval": summary(gaps)}


def main(argv: list[str] | None = None) -> int:
    from .studio import configure_render_threads

    configure_render_threads()  # as `steergan` does
    from models.io.video import CLIPS_CHECKPOINT

    parser = argparse.ArgumentParser(prog="python -m app.bench_playback")
    parser.add_argument("checkpoint", nargs="?", default=str(CLIPS_CHECKPOINT))
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    app, window = make_app(None, args.checkpoint)
    deadline = time.perf_counter() + 60
    while window.canvas.frame is None and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.005)
    if not window.playback.enabled:
        parser.error(f"{args.checkpoint}: this generator has no time capability")
    window.playback.set_fps(args.fps)
    window.playback.set_length(args.seconds)
    first, second = play_passes(app, window, passes=2, timeout_s=600)
    result = {"checkpoint": args.checkpoint, "device": window.device_label.text(), "target_fps": args.fps,
              "frames_per_loop": window.playback.frame_count, "first_pass_rendering": rate(first),
              "second_pass_cached": rate(second)}
    print(json.dumps(result, indent=2))
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
