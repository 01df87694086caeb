"""Time one D step and one G step of each recipe on this machine (issue 23: a step of the new D
costs at most 1.5x today's): `python -m models.training.bench_d_step [--configs rooms-cpu-stylegan2,rooms-cpu]`.

Prints milliseconds per phase (median of --repeats after --warmup), with the machine's load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from models.training.configs import training_config
from models.training.trainer import Trainer


def _phases(trainer: Trainer) -> dict[str, float]:
    """One step of D (its losses, R1 when due, the update) and one of G, timed apart."""
    from models.training.losses import g_nonsaturating, r1_penalty

    G, D, B = trainer.G, trainer.D, trainer.batch
    real_batch, real, fake = trainer._d_inputs(B)
    t0 = time.perf_counter()
    stats: dict = {}
    loss_d = trainer._d_loss(real_batch, real, fake, stats)  # as the trainer runs it (bf16 autocast or none)
    trainer.update_d(loss_d, lambda: r1_penalty(trainer._r1_target(), real), stats)
    t1 = time.perf_counter()
    D.requires_grad_(False)
    lat = trainer._latents(B)
    with trainer.amp:
        seen = trainer._with_layout(G(lat), lat)
        loss_g = trainer._projected_g_loss(seen, stats) if trainer.projected else g_nonsaturating(D(seen).float())
    trainer.opt_G.zero_grad(set_to_none=True)
    loss_g.backward()
    trainer.opt_G.step()
    D.requires_grad_(True)
    t2 = time.perf_counter()
    trainer.step += 1
    return {"d_ms": (t1 - t0) * 1000, "g_ms": (t2 - t1) * 1000}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="rooms-cpu-stylegan2,rooms-cpu", help="training configs, comma-separated")
    p.add_argument("--repeats", type=int, default=32)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="fp32 (default: the README's D-step tables), bf16 or auto (what training uses here)")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    print(f"load average {os.getloadavg()[0]:.2f}, {torch.get_num_threads()} torch threads, {args.precision}")
    for name in args.configs.split(","):
        cfg = training_config(name)
        trainer = Trainer(cfg, "/tmp/steergan-bench-d", log=lambda m: None, precision=args.precision)
        rows = [_phases(trainer) for _ in range(args.warmup + args.repeats)][args.warmup:]
        # R1 runs every r1_every steps: the mean D step includes its share, the median does not
        d_mean = statistics.mean(r["d_ms"] for r in rows)
        d_median = statistics.median(r["d_ms"] for r in rows)
        print(f"{name:24s} (batch {cfg.batch}) D step median {d_median:6.1f} ms, mean (with lazy R1)"
              f" {d_mean:6.1f} ms; G step median {statistics.median(r['g_ms'] for r in rows):6.1f} ms")


if __name__ == "__main__":
    main()
