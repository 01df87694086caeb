"""The command line the per-checkpoint metrics share (`python -m models.metrics.kinds|limbs|parts
CKPT [CKPT ...] [--samples N]`): one JSON line per checkpoint, a bad file one line naming it."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def per_checkpoint_main(argv: list[str] | None, description: str, tag: str,
                        measure: Callable[[Any, int], dict]) -> int:
    """Parse CKPT... and --samples, print `measure(G, samples)` per checkpoint (floats rounded
    to 4 places); exit 1 at the first file that cannot be loaded or measured."""
    from models.io.checkpoint import CheckpointError, load_checkpoint

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        try:
            G, _ = load_checkpoint(path)
            report = measure(G.eval(), args.samples)
        except (CheckpointError, ValueError) as exc:
            print(f"{tag}: {path}: {exc}", file=sys.stderr)
            return 1
        print(path, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}),
              flush=True)
    return 0
