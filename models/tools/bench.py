"""`steergan bench`: median time of one batch-1 render per architecture, CPU and GPU."""
from __future__ import annotations

import os
import platform
import statistics
import time

import torch

from models.config import ARCHITECTURES
from models.document.scene import initial_state
from models.io.library import untrained_generator
from models.render import render

SHIPPED = ("rooms", "figures", "figures-no-mtm")


def _time_renders(generator, state, repeats: int, sync) -> float:
    for _ in range(3):  # warm-up: allocator, kernels, lazy init
        render(generator, state)
    times = []
    for i in range(repeats):
        # as a drag would: a new position each frame (a plain model has nothing to drag)
        s = state.move_center(0, 0, (0.3 + 0.4 * i / max(1, repeats), 0.5)) if state.objects else state
        sync()
        t0 = time.perf_counter()
        render(generator, s)
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_benchmark(archs: list[str] | None = None, repeats: int = 20) -> dict:
    results = {}
    for name in archs or SHIPPED:
        if name not in ARCHITECTURES:
            raise SystemExit(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
        g = untrained_generator(name)
        state = initial_state(g.config, 0)
        row = {"resolution": g.config.resolution,
               "parameters": sum(p.numel() for p in g.parameters()),
               "cpu_ms_median": round(_time_renders(g, state, repeats, lambda: None), 2)}
        if torch.cuda.is_available():
            gpu = g.to("cuda")
            row["gpu_ms_median"] = round(_time_renders(gpu, state, repeats, torch.cuda.synchronize), 3)
        results[name] = row
    return {"machine": machine(), "batch": 1, "results": results}
