"""The relay's model on a lent GPU: continue the CPU relay's state (checkpoints/relay/NAME.
safetensors) for a few minutes at a GPU's batch, and return the state for the relay to go on.

    python3 -m models.training.gpu_relay --minutes 3 --out $OUT      # on the GPU machine
    steergan relay start --until HH:MM --from DIR/rooms-cpu.safetensors   # back home
(DIR: the returned $OUT; `relay start --from` refuses while an unfinished relay run is in
runs/relay/NAME: finish it, or move its state.safetensors away, first.)

Why: the shipped default is the relay's 64 px model, trained on 2 CPU cores at 5-18 images/s;
a lent GPU trains the same model about 18 times faster than an fp32 CPU (an H200: 126 images/s
at batch 32, session 16), so the minutes a GPU run leaves over are worth more here than
anywhere else. (--batch 16, session 17: 71 images/s, and no better realism than batch 32;
session 16's "batch 32 raised the realism classifier 0.742 -> 0.812" was mostly the noise of
one classifier test.) Training only (no sheets, no eval: the relay's
finish measures the model here as always). Never imports Qt.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELAY_STATES = ROOT / "checkpoints" / "relay"


def spec_for(name: str, config: str, minutes: float, out: Path, work: Path, device: str, batch: int) -> dict:
    warm = RELAY_STATES / f"{name}.safetensors"
    if not warm.is_file():
        raise SystemExit(f"gpu_relay: {warm}: no relay state to continue")
    from models.training.configs import gpu_relay_config, training_config

    cfg = dataclasses.replace(gpu_relay_config(training_config(config), batch), name=name)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    gpu = None
    if device.startswith("cuda"):
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"name": name, "config": cfg.to_dict(), "device": device, "warm_in": str(warm),
            "state_out": str(out / f"{name}.safetensors"), "work": str(work), "train_from": 0,
            "train_until": time.time() + minutes * 60, "channels_last": device.startswith("cuda"),
            "threads": os.cpu_count() or 2, "min_steps": 2, "train_only": True,
            "run_entry": {"date": stamp, "device": gpu or device, "via": "gpu_relay", "batch": batch}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m models.training.gpu_relay", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, required=True, help="training minutes (the state is saved every minute)")
    p.add_argument("--out", type=Path, required=True, help="the folder the state is written into")
    p.add_argument("--model", default="rooms-cpu", help="the relay model (default rooms-cpu)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args(argv)
    from models.training.gpu_worker import main as worker
    from models.training.relay import RelayError, read_plan

    try:
        entries, _ = read_plan()
    except RelayError as exc:
        print(f"gpu_relay: {exc}", file=sys.stderr)
        return 2
    entry = next((e for e in entries if e.name == args.model), None)
    if entry is None:
        print(f"gpu_relay: {args.model!r} is not in the relay plan", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = ROOT / "runs" / "gpu-relay" / entry.name
    spec = spec_for(entry.name, entry.config, args.minutes, args.out.resolve(), work, args.device, args.batch)
    work.mkdir(parents=True, exist_ok=True)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    rc = worker([str(spec_path)])
    status = work / "status.json"
    if status.is_file():
        print(status.read_text(), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
