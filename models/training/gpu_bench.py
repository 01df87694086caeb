"""The measuring part of a GPU run, in its own process (so that a hang cannot take the run
with it): training images/s of each model alone on the GPU, and the latency of one
batch-1 render (p50/p95), with the MTM backend that STEERGAN_MTM_KERNEL selects.

    python3 -m models.training.gpu_bench SPEC.json

SPEC: {"device", "models": [{"name", "config", "state"}], "seconds_each", "renders",
"throughput": bool, "out": path of the JSON written, "work": scratch folder, "threads"}.
The JSON is rewritten after each measurement, so a kill keeps what was measured.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from models.training.configs import TrainConfig
from models.training.gpu_worker import WarmTrainer, mtm_backend, setup_torch, write_json
from models.training.state import TrainStateError


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alone_rate(spec: dict, model: dict, seconds: float, channels_last: bool | None = None) -> dict:
    """Train steps of one model with nothing else on the GPU: images (clips) per second."""
    cfg = TrainConfig.from_dict(model["config"])
    if channels_last is None:
        channels_last = spec.get("channels_last", False)
    trainer = WarmTrainer(cfg, Path(spec["work"]) / f"bench-{model['name']}", spec["device"],
                          channels_last=channels_last)
    if model.get("state") and Path(model["state"]).exists():
        try:
            trainer.warm_start(Path(model["state"]))
        except TrainStateError:
            pass  # the speed does not depend on the weights
    trainer.warm_step = 0  # no rate ramp here
    for _ in range(3):  # allocator, cudnn autotuning
        trainer.train_step()
    sync(trainer.device)
    t0, images0 = time.perf_counter(), trainer.images_seen
    steps = 0
    while time.perf_counter() - t0 < seconds or steps < 2:
        trainer.train_step()
        steps += 1
        if steps % 5 == 0:
            sync(trainer.device)
    sync(trainer.device)
    dt = time.perf_counter() - t0
    return {"images_per_s": round((trainer.images_seen - images0) / dt, 1), "steps": steps,
            "seconds": round(dt, 2), "batch": cfg.batch}


def render_latency(spec: dict, model: dict, renders: int) -> dict:
    """Batch-1 renders of the trained EMA generator as a drag would ask for them (a new
    object position each frame): milliseconds p50 and p95."""
    from models.config import architecture
    from models.document.scene import initial_state
    from models.nets.generator import Generator
    from models.render import render
    from models.training.state import load_warm_state

    device = torch.device(spec["device"])
    G = Generator(architecture(TrainConfig.from_dict(model["config"]).architecture))
    if model.get("state") and Path(model["state"]).exists():
        G.load_state_dict(load_warm_state(model["state"])[0]["G_ema"])
    G = G.eval().requires_grad_(False).to(device)
    state = initial_state(G.config, 0)
    for _ in range(5):
        render(G, state)
    times = []
    for i in range(renders):
        s = state.move_center(0, 0, (0.3 + 0.4 * i / renders, 0.5)) if state.objects else state
        sync(device)
        t0 = time.perf_counter()
        render(G, s)
        sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 3),
            "renders": renders}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    setup_torch(spec["device"], spec.get("threads", 4))
    out = Path(spec["out"])
    result: dict = {"device": spec["device"], "kernel_backend": mtm_backend(torch.device(spec["device"])),
                    "alone": {}, "render": {}, "errors": {}}
    for model in spec["models"]:
        name = model["name"]
        try:
            result["render"][name] = render_latency(spec, model, spec["renders"])
        except Exception as exc:  # noqa: BLE001  one model's failure must not hide the others'
            result["errors"][f"render {name}"] = f"{type(exc).__name__}: {exc}"
        write_json(out, result)
    if spec.get("throughput"):
        for model in spec["models"]:
            name = model["name"]
            try:
                result["alone"][name] = alone_rate(spec, model, spec["seconds_each"])
            except Exception as exc:  # noqa: BLE001
                result["errors"][f"alone {name}"] = f"{type(exc).__name__}: {exc}"
            write_json(out, result)
        # The other memory format, for the first model, if there is time: the next run uses
        # whichever trained faster (channels-last is not always faster for grouped convs).
        until = spec.get("until")
        if spec["models"] and (until is None or time.time() + 3 * spec["seconds_each"] + 10 < until):
            model, other = spec["models"][0], not spec.get("channels_last", False)
            try:
                r = alone_rate(spec, model, spec["seconds_each"], channels_last=other)
                result["alone_other_format"] = {"name": model["name"], "channels_last": other, **r}
            except Exception as exc:  # noqa: BLE001
                result["errors"][f"alone {model['name']} channels_last={other}"] = f"{type(exc).__name__}: {exc}"
            write_json(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
