"""Where a training step spends its time: `python -m models.training.profile_step rooms
--device cuda --out DIR`. Measure before optimising: the first GPU run trained the 128 px
rooms at 286 images/s alone (4.5 steps/s at batch 64), far below what an H100 does for a
network this small, so the step is bound by something other than its convolutions.

For each config it times plain steps (synchronised wall clock), then profiles a few more
under torch.profiler with the trainer's phases labelled, and writes per config
  NAME_phases.txt  the phases (data, latents, D update, G update, EMA) in ms a step,
  NAME_ops.txt     the top operators by self device time and by self CPU time,
  NAME_trace.json  the Chrome trace (chrome://tracing, Perfetto),
and one summary.json. Runs on the CPU too (its smoke test in CI).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from models.training.gpu_bench import sync

# The trainer's methods that make up one step, labelled in the profile.
PHASES = ("_latents", "_real_batch", "update_d", "update_g", "end_step")


def _labelled(fn, label: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(label):
            return fn(*args, **kwargs)
    return wrapper


def profile_config(name: str, configs: dict, device: str, warmup: int, timed: int, profiled: int,
                   out: Path) -> dict[str, Any]:
    from models.training.gpu_worker import WarmTrainer

    # The GPU run's trainer, set up as it trains (channels-last on a GPU).
    trainer = WarmTrainer(configs[name], out / f"work-{name}", device, channels_last=device.startswith("cuda"))
    for phase in PHASES:
        setattr(trainer, phase, _labelled(getattr(trainer, phase), f"phase:{phase}"))
    for module, label in ((trainer.G, "G.forward"), (trainer.D, "D.forward")):
        module.forward = _labelled(module.forward, label)
    dev = trainer.device
    for _ in range(warmup):
        trainer.train_step()
    sync(dev)
    start = time.perf_counter()
    for _ in range(timed):
        trainer.train_step()
    sync(dev)
    step_ms = (time.perf_counter() - start) / max(timed, 1) * 1000
    activities = [torch.profiler.ProfilerActivity.CPU]
    if dev.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(profiled):
            trainer.train_step()
        sync(dev)
    trace = out / f"{name}_trace.json"
    prof.export_chrome_trace(str(trace))
    if trace.stat().st_size > 15 << 20:  # the GPU machine returns files of 16 MiB at most
        trace.unlink()
    events = prof.key_averages()
    device_attr = "self_device_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    phases: dict[str, dict[str, float]] = {}
    for e in events:  # on CUDA a label has two rows: its CPU range and its range on the device
        if e.key.startswith("phase:") or e.key.endswith(".forward"):
            row = phases.setdefault(e.key, {"cpu_ms": 0.0, "device_ms": 0.0})
            row["cpu_ms"] = max(row["cpu_ms"], e.cpu_time_total / 1000 / profiled)
            row["device_ms"] = max(row["device_ms"], getattr(e, "device_time_total", 0.0) / 1000 / profiled)
    lines = [f"{name}: batch {trainer.batch}, {step_ms:.1f} ms a step unprofiled ({timed} steps),"
             f" {trainer.batch / step_ms * 1000:.0f} images/s; per step under the profiler:",
             f"{'phase':28s} {'cpu ms':>9s} {'device ms':>10s}"]
    lines += [f"{k:28s} {v['cpu_ms']:9.2f} {v['device_ms']:10.2f}" for k, v in sorted(phases.items())]
    kernels = sum(e.count for e in events if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
    lines.append(f"device kernels a step: {kernels / profiled:.0f}")
    (out / f"{name}_phases.txt").write_text("\n".join(lines) + "\n")
    ops = [f"# by self {'device' if dev.type == 'cuda' else 'CPU'} time",
           events.table(sort_by=device_attr, row_limit=30),
           "# by self CPU time", events.table(sort_by="self_cpu_time_total", row_limit=30)]
    (out / f"{name}_ops.txt").write_text("\n".join(ops))
    print("\n".join(lines), flush=True)
    return {"batch": trainer.batch, "step_ms": round(step_ms, 2),
            "images_per_s": round(trainer.batch / step_ms * 1000, 1), "kernels_per_step": round(kernels / profiled),
            "phases": phases}


def main(argv: list[str] | None = None) -> int:
    from models.training.configs import GPU_CONFIGS, SMOKE_CONFIGS
    from models.training.gpu_worker import setup_torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", default=["rooms", "figures"], help="configs to profile")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--smoke", action="store_true", help="the tiny smoke configs (CPU test)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (unprofiled)")
    ap.add_argument("--profiled", type=int, default=4)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    configs = SMOKE_CONFIGS if args.smoke else GPU_CONFIGS
    unknown = [n for n in args.names if n not in configs]
    if unknown:
        ap.error(f"unknown config(s) {unknown}; known: {sorted(configs)}")
    args.out.mkdir(parents=True, exist_ok=True)
    setup_torch(args.device, torch.get_num_threads())  # TF32 and cuDNN autotuning, as the GPU run
    summary: dict[str, Any] = {"device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                               "torch": torch.__version__, "configs": {}}
    for name in args.names:
        try:
            summary["configs"][name] = profile_config(name, configs, args.device, args.warmup, args.steps,
                                                      args.profiled, args.out)
        except Exception as exc:  # noqa: BLE001  # one config's failure must not cost the others' numbers
            summary["configs"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0 if all("error" not in v for v in summary["configs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
