"""Train the metrics probe on the procedural data: `python -m models.metrics.train_probe`."""
from __future__ import annotations

import argparse

import torch

from models.metrics.probe import DEFAULT_PROBE, save_probe, train_probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--out", default=str(DEFAULT_PROBE))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    probe, info = train_probe(args.minutes)
    save_probe(args.out, probe, info)
    print(f"saved {args.out}: {info}")


if __name__ == "__main__":
    main()
