"""Throughput of the procedural data sets: `python -m models.data.bench`.

Prints images per second for rooms and figures at 64 and 128 px, batch 32, on the CPU and
on CUDA when there is one. Sampling is included: it is part of every training step.
"""
from __future__ import annotations

import argparse
import time

import torch

from models.data import make_dataset


def images_per_second(name: str, size: int, batch: int, device: str, seconds: float = 1.0) -> float:
    data = make_dataset(name, size, device)
    gen = torch.Generator().manual_seed(0)
    data.sample(batch, gen)  # warm-up: allocator, kernels, lazy init
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 3:
        data.sample(batch, gen)
        count += 1
    sync()
    return count * batch / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    args = parser.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"{'dataset':<10}{'size':>6}{'batch':>7}  {'device':<8}{'images/s':>10}")
    for device in devices:
        for name in ("rooms", "figures"):
            for size in args.sizes:
                rate = images_per_second(name, size, args.batch, device, args.seconds)
                print(f"{name:<10}{size:>6}{args.batch:>7}  {device:<8}{rate:>10.0f}")


if __name__ == "__main__":
    main()
