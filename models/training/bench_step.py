"""How fast is a CPU training step, and what makes it faster? (issue 24's A/B; prints numbers)

    python -m models.training.bench_step [--config rooms-cpu] [--variants fp32,bf16,bf16-cl]
                                         [--steps 20] [--rounds 2]

Each variant is a fresh trainer with the same seed; the variants take turns, `rounds` times,
so that a drift in the machine's load falls on all of them alike. Variants:
  fp32      the eager step in float32
  fp32-cl   float32, G and D in channels-last memory
  bf16      bfloat16 autocast (models/training/precision.py), contiguous memory
  bf16-cl   bfloat16 autocast and channels-last: what `precision="auto"` picks on a CPU
            with bf16 in hardware
  compiled  float32 with G's and D's forward passes compiled (nn.Module.compile); its first
            steps (the compilation) are the warm-up, timed apart
Run it on an idle machine (pause the relay: kill -STOP -- -PID); the load is printed.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

VARIANTS = ("fp32", "fp32-cl", "bf16", "bf16-cl", "compiled")


def _trainer(config: str, out: str, variant: str):
    from models.training.configs import training_config
    from models.training.trainer import Trainer

    torch.manual_seed(0)
    trainer = Trainer(training_config(config), out, device="cpu",
                      precision="bf16" if variant.startswith("bf16") else "fp32")
    # Trainer puts G and D in channels-last with bf16 on the CPU; the variants say it apart.
    memory = torch.channels_last if variant.endswith("-cl") else torch.contiguous_format
    for module in (trainer.G, trainer.D):
        module.to(memory_format=memory)  # type: ignore[call-overload]
    if variant == "compiled":
        trainer.G.compile()
        trainer.D.compile()
    return trainer


def _time(trainer, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="rooms-cpu")
    parser.add_argument("--variants", default="fp32,bf16,bf16-cl")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    rates: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for v in variants:
            trainers[v] = _trainer(args.config, os.path.join(tmp, v), v)
            warm = _time(trainers[v], args.warmup)
            print(f"{v}: warm-up {args.warmup} steps {warm:.1f} s", flush=True)
        for r in range(args.rounds):
            for v in variants:
                seconds = _time(trainers[v], args.steps)
                rates[v].append(args.steps * trainers[v].batch / seconds)
                print(f"round {r + 1} {v}: {args.steps} steps {seconds:.1f} s = {rates[v][-1]:.1f} img/s"
                      f" (batch {trainers[v].batch}, {args.threads} threads, load {os.getloadavg()[0]:.2f})",
                      flush=True)
    base = sum(rates[variants[0]]) / len(rates[variants[0]])
    for v in variants:
        mean = sum(rates[v]) / len(rates[v])
        print(f"{args.config} {v}: {mean:.1f} img/s, {mean / base:.2f}x {variants[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
