"""Is torch.compile worth it for a CPU training step? (issue 24's A/B; prints numbers)

    python -m models.training.bench_compile [--config rooms-cpu] [--steps 30]

Times `steps` training steps of the config eagerly, then in a fresh trainer with the same
seed whose G and D forward passes are compiled (nn.Module.compile: the state dict's keys do
not change); the compiled trainer's first steps (the compilation) are timed apart. Only the
forward passes are compiled, as the trainer's phases call them; the backward runs through
AOTAutograd's compiled graph. Both on 2 threads, one after the other, on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def _trainer(config: str, out: str, compiled: bool):
    from models.training.configs import training_config
    from models.training.trainer import Trainer

    torch.manual_seed(0)
    trainer = Trainer(training_config(config), out, device="cpu")
    if compiled:
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
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.set_num_interop_threads(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for compiled in (False, True):
            trainer = _trainer(args.config, os.path.join(tmp, str(compiled)), compiled)
            warm = _time(trainer, args.warmup)
            seconds = _time(trainer, args.steps)
            rate = args.steps * trainer.batch / seconds
            results["compiled" if compiled else "eager"] = rate
            print(f"{'compiled' if compiled else 'eager'}: warm-up {args.warmup} steps {warm:.1f} s, then"
                  f" {args.steps} steps {seconds:.1f} s = {rate:.1f} img/s (batch {trainer.batch}, 2 threads,"
                  f" load {os.getloadavg()[0]:.2f})", flush=True)
    print(f"compiled / eager: {results['compiled'] / results['eager']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
