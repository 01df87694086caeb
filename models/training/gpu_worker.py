"""One model of a GPU run, in its own process: warm-start, train until a deadline, save the
small warm-start state every few minutes (atomically, into the run's output folder), then
a checkpoint, sample sheets and the metrics. Started by gpu_run.py with a JSON spec:

    python3 -m models.training.gpu_worker SPEC.json

It reports through WORK/status.json (phase, images, rates, errors) and its exit status:
0 done, 3 training diverged (the last good state stays), 4 the spec or the warm state is
unusable. Never imports Qt: the GPU machine has none.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch

from models.config import ARCHITECTURES
from models.document.fileio import atomic_write_json as write_json
from models.document.fileio import locked
from models.io.checkpoint import save_checkpoint
from models.io.weight_shapes import generator_shapes
from models.nets.widen import widen_state, widened_level
from models.training.configs import TrainConfig
from models.training.precision import to_channels_last
from models.training.state import (
    TrainStateError,
    load_warm_state,
    save_warm_state,
    saved_kind,
    warm_state_from_checkpoint,
)
from models.training.trainer import Trainer, TrainingDiverged

LR_WARMUP_STEPS = 100  # after a warm start Adam's moments are empty: ramp the rate back up
CURVE_POINTS_PER_RUN = 100
CURVE_POINTS_MAX = 2000




def setup_torch(device: str, threads: int) -> None:
    torch.set_num_threads(max(1, threads))
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 for what autocast leaves in fp32
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolutions once


def mtm_backend(device: torch.device) -> str:
    """What kernels.dispatch says the MTM runs on here; never fails (its signature may change)."""
    try:
        from kernels import dispatch

        try:
            return str(dispatch.active_backend(device))
        except TypeError:
            return str(dispatch.active_backend())
    except Exception as exc:  # noqa: BLE001  a report, not a reason to stop training
        return f"unknown ({type(exc).__name__}: {exc})"


def thin(points: list, n: int) -> list:
    """At most n points, evenly spread, keeping the last."""
    if len(points) <= n:
        return points
    step = len(points) / n
    return [points[min(len(points) - 1, int(round((i + 1) * step)) - 1)] for i in range(n)]


def same_weights(old: object, new: str) -> bool:
    """Whether the architectures named `old` and `new` have the same weights (names and
    shapes): a state of one then starts the other, which wires them differently."""
    if not isinstance(old, str) or old not in ARCHITECTURES or new not in ARCHITECTURES:
        return False
    return generator_shapes(ARCHITECTURES[old]) == generator_shapes(ARCHITECTURES[new])


# Weights an architecture may add to a state's whose initialisation draws what the state drew
# (nets/sprites.py, zero: rooms-cpu-local -> rooms-cpu-sprites; bone biases, zero: figures-cpu
# -> figures-cpu-bones; palettes, blended in by a strength that starts at zero: rooms-cpu-own
# -> rooms-cpu-palette; kind vectors, zero: rooms-cpu-own -> rooms-cpu-kinds).
GROWN_PREFIXES = ("sprites.", "bone_bias.", "palette.", "kind_vectors")


def grown_weights(old: object, new: str) -> set[str] | None:
    """The names of the weights that architecture `new` adds to `old`'s, if every weight of
    `old` is in `new` with its shape and each added one is of a kind that starts drawing nothing
    (GROWN_PREFIXES); None otherwise. A state of `old` then starts `new` unchanged."""
    if not isinstance(old, str) or old not in ARCHITECTURES or new not in ARCHITECTURES:
        return None
    before, after = generator_shapes(ARCHITECTURES[old]), generator_shapes(ARCHITECTURES[new])
    if any(after.get(name) != shape for name, shape in before.items()):
        return None
    added = set(after) - set(before)
    return added if added and all(name.startswith(GROWN_PREFIXES) for name in added) else None


def widened_from(old: object, new: str) -> int | None:
    """The resolution whose channels architecture `new` widens in `old`'s (nets/widen.py: a
    state of `old` then starts `new` drawing the same pictures); None if it is no widening."""
    if not isinstance(old, str) or old not in ARCHITECTURES or new not in ARCHITECTURES:
        return None
    return widened_level(ARCHITECTURES[old], ARCHITECTURES[new])


class WarmTrainer(Trainer):
    """The Trainer, saving the small warm-start state (not the full resumable one) and
    continuing a previous run's weights, images seen and history."""

    def __init__(self, cfg: TrainConfig, work: Path, device: str, state_out: Path | None = None,
                 lock: Path | None = None, channels_last: bool = False, run_entry: dict | None = None,
                 precision: str = "auto"):
        super().__init__(cfg, work, device=device, log=lambda m: print(m, file=sys.stderr, flush=True),
                         precision=precision)
        self.state_out, self.lock = state_out, lock
        self.warm_step = 0
        self.history: dict[str, Any] = {"runs": [], "curve": []}
        self.run_entry = dict(run_entry or {})
        self.images_at_start = 0
        if channels_last:
            to_channels_last(self.G, self.G_ema, self.D)

    def warm_start(self, path: Path, fresh_d: bool = False) -> dict:
        """Load G, G_ema, D, images seen, step and history. Raises TrainStateError if the file
        is unusable or was trained with an architecture whose weights differ (one with the
        same weights, such as rooms-cpu for rooms-cpu-fine, is taken; so is one that the run's
        architecture grows by zero-initialised weights, `grown_weights`, or widens at its
        finest level, `widened_from`). `fresh_d`: keep this trainer's
        new D (another D design may then be tried on the trained G: only G must fit). A
        shipped checkpoint is taken too: its EMA generator becomes G and G_ema, and D starts
        new (it holds none)."""
        if saved_kind(path) == "checkpoint":
            modules, info = warm_state_from_checkpoint(path)
            fresh_d = True
        else:
            modules, info = load_warm_state(path)
        old = (info.get("config") or {})
        defaults = {"recipe": "stylegan2"}  # states from before issue 23 name no recipe
        # A StyleGAN2 D's state becomes the pixel D of a projected recipe that has one
        # (d_pixel): the trained D keeps judging what it judged (where the figure is, session
        # 19), and the projected heads beside it start new.
        as_pixel_d = (not fresh_d and old.get("recipe", "stylegan2") == "stylegan2"
                      and self.cfg.recipe == "projected" and self.cfg.d_pixel > 0)
        keys = ("architecture", "dataset") + (() if fresh_d else ("condition_d_on_layout",)) \
            + (() if fresh_d or as_pixel_d else ("recipe",))
        # (a checkpoint older than its `trained_on` names no dataset: its architecture must do)
        grown = grown_weights(old.get("architecture"), self.cfg.architecture) or set()
        widened = widened_from(old.get("architecture"), self.cfg.architecture)
        for key in (k for k in keys if k == "architecture" or k in old or k in defaults):
            if key == "architecture" and (same_weights(old.get(key), self.cfg.architecture) or grown or widened):
                continue  # the same weights wired differently (rooms-cpu -> rooms-cpu-fine), more, or wider
            if old.get(key, defaults.get(key)) != getattr(self.cfg, key):
                raise TrainStateError(path, f"trained with {key}={str(old.get(key, defaults.get(key)))[:40]!r},"
                                            f" this run uses {getattr(self.cfg, key)!r}")
        if not fresh_d and getattr(self.cfg, "d_rgb_detail", False) and not old.get("d_rgb_detail", False):
            # a D that sees the finest pixels, grown from one that saw their averages
            from models.nets.projected import ProjectedDiscriminator, grow_detail_inputs

            assert isinstance(self.D, ProjectedDiscriminator)  # d_rgb_detail is a projected D's
            modules["D"] = grow_detail_inputs(modules["D"], self.D.detail_factor)
        if as_pixel_d:
            modules["D"] = {**self.D.state_dict(), **{f"pixel.{k}": v for k, v in modules["D"].items()}}
        parts = (("G", self.G), ("G_ema", self.G_ema)) + (() if fresh_d else (("D", self.D),))
        try:
            for name, module in parts:
                if name != "D" and widened:
                    modules[name] = widen_state(modules[name], module.state_dict(), widened)
                if name == "D" or not grown:
                    module.load_state_dict(modules[name])
                    continue
                # the added weights keep their initialisation, which draws the same (strict about the rest)
                missing, unexpected = module.load_state_dict(modules[name], strict=False)
                if unexpected or set(missing) != grown:
                    raise RuntimeError(f"missing {sorted(set(missing) - grown)[:5]}, unexpected {unexpected[:5]}")
        except (RuntimeError, ValueError) as exc:
            raise TrainStateError(path, f"weights do not fit the {self.cfg.architecture} networks ({exc})") from None
        self.step = self.warm_step = int(info.get("step", 0))
        self.images_seen = self.images_at_start = int(info.get("images_seen", 0))
        self.train_seconds = float(info.get("train_seconds", 0.0))
        self.history = info.get("history") or {"runs": [], "curve": []}
        # A fresh data stream per run (a warm state keeps no RNG): seeded by the step.
        self.rng.manual_seed(self.cfg.seed * 7919 + self.rank + 1_000_003 * self.step)
        return info

    def train_step(self) -> dict[str, torch.Tensor]:
        if self.warm_step:
            frac = min(1.0, (self.step - self.warm_step + 1) / LR_WARMUP_STEPS)
            for opt in (self.opt_G, self.opt_D):  # defaults: the learning rate the trainer chose
                for group in opt.param_groups:
                    group["lr"] = opt.defaults["lr"] * frac
        return super().train_step()

    def _this_run(self) -> dict:
        return {**self.run_entry, "images_start": self.images_at_start, "images_end": self.images_seen,
                "steps_end": self.step, "train_seconds_end": round(self.train_seconds, 1)}

    def curve(self) -> list:
        """The loss curve across runs: earlier runs' points + this run's log, thinned."""
        rows: list[list[float | None]] = []
        log = self.out / "log.csv"
        if log.exists():
            with open(log, newline="") as f:
                for r in csv.DictReader(f):
                    try:
                        if int(r["step"]) > self.warm_step:
                            rows.append([int(r["images"]), float(r["seconds"]), float(r["loss_d"] or "nan"),
                                         float(r["loss_g"] or "nan")])
                    except (KeyError, ValueError):
                        continue
        rows = [[v if not (isinstance(v, float) and not math.isfinite(v)) else None for v in r] for r in rows]
        return thin(list(self.history.get("curve", [])) + thin(rows, CURVE_POINTS_PER_RUN), CURVE_POINTS_MAX)

    def warm_info(self) -> dict:
        return {"config": self.cfg.to_dict(), "step": self.step, "images_seen": self.images_seen,
                "train_seconds": round(self.train_seconds, 1), "device": self._device_name(),
                "history": {"runs": list(self.history.get("runs", [])) + [self._this_run()], "curve": self.curve()}}

    def save(self) -> Path | None:
        """The warm-start state into the output folder (atomic, one writer at a time)."""
        self.check_finite()
        if self.state_out is None:
            return None
        with locked(self.lock):
            data = save_warm_state(self.state_out, {"G": self.G, "G_ema": self.G_ema, "D": self.D}, self.warm_info())
        self.log(f"saved {self.state_out} ({len(data) / 2**20:.1f} MiB) at step {self.step}, {self.images_seen} images")
        return self.state_out


def steady_rate(log: Path, after_step: int) -> float | None:
    """Images per second over the second half of this run's log (past compile/warm-up)."""
    if not log.exists():
        return None
    with open(log, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) > after_step]
    if len(rows) < 3:
        return None
    a, b = rows[len(rows) // 2], rows[-1]
    dt = float(b["seconds"]) - float(a["seconds"])
    return round((int(b["images"]) - int(a["images"])) / dt, 1) if dt > 0 else None


def build(spec: dict, status: dict) -> WarmTrainer:
    cfg = TrainConfig.from_dict(spec["config"])
    work = Path(spec["work"])
    trainer = WarmTrainer(cfg, work, spec["device"], Path(spec["state_out"]) if spec.get("state_out") else None,
                          Path(spec["lock"]) if spec.get("lock") else None, spec.get("channels_last", False),
                          spec.get("run_entry"))
    warm = spec.get("warm_in")
    status["warm_from"] = None
    if warm and Path(warm).exists():
        try:
            trainer.warm_start(Path(warm))
            status["warm_from"] = str(warm)
        except TrainStateError as exc:  # start from scratch rather than lose the run
            status["warm_error"] = str(exc)
            print(f"warm start refused, training from scratch: {exc}", file=sys.stderr, flush=True)
    return trainer


def sample_sheets(ckpt: Path, prefix: Path, cell: int) -> list[str]:
    from models.tools.showcase import main as showcase

    prefix.parent.mkdir(parents=True, exist_ok=True)
    showcase([str(ckpt), "--out", str(prefix), "--cell", str(cell)])
    return sorted(p.name for p in prefix.parent.glob(prefix.name + "_*.png"))


def evaluate_model(G, device: str, samples: int, fd_samples: int) -> dict:
    from models.metrics.evaluate import evaluate
    from models.metrics.probe import DEFAULT_PROBE, load_probe

    probe, _ = load_probe(DEFAULT_PROBE)
    probe = probe.to(device)
    return evaluate(G.to(device), probe, samples=samples, fd_samples=fd_samples,
                    log=lambda m: print(m, file=sys.stderr, flush=True))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python3 -m models.training.gpu_worker SPEC.json", file=sys.stderr)
        return 4
    spec = json.loads(Path(argv[0]).read_text())
    work = Path(spec["work"])
    work.mkdir(parents=True, exist_ok=True)
    status: dict[str, Any] = {"name": spec["name"], "phase": "init", "pid": os.getpid()}
    status_path = work / "status.json"

    def report(**kw) -> None:
        status.update(kw)
        write_json(status_path, status)

    report()

    stopping = []

    def interrupt(signum, frame):  # SIGTERM from gpu_run at a deadline: like Ctrl-C, so that
        stopping.append(signum)     # training saves its state and a file being written is cleaned up
        # At once, mid-step too (Trainer.on_stop_signal would finish the step first): gpu_run
        # kills a worker 5 s after its SIGTERM, and GPU minutes are few. The half step costs a
        # warm state nothing that matters (the next run starts with fresh optimiser moments).
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    setup_torch(spec["device"], spec.get("threads", 1))
    try:
        trainer = build(spec, status)
    except Exception as exc:  # reported to the run, then raised
        report(phase="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    if spec.get("train_from", 0) > time.time():  # one model after another: wait for this one's turn
        report(phase="waiting")
        time.sleep(spec["train_from"] - time.time())
    report(phase="training", images_before=trainer.images_seen, step_before=trainer.step,
           kernel_backend=mtm_backend(trainer.device), started=time.time())
    seconds_before = trainer.train_seconds
    budget = max(0.0, spec["train_until"] - time.time())
    t0 = time.time()
    try:
        if budget < 1 and spec.get("min_steps"):
            trainer.run(max_steps=trainer.step + spec["min_steps"])
        else:
            trainer.run(minutes=budget / 60)
    except TrainingDiverged as exc:
        report(phase="diverged", error=str(exc), images_after=trainer.images_seen)
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 3
    run_seconds = trainer.train_seconds - seconds_before
    report(phase="stopped" if stopping else "trained", images_after=trainer.images_seen, step_after=trainer.step,
           train_seconds_run=round(run_seconds, 1), wall_seconds_run=round(time.time() - t0, 1),
           images_per_s=round((trainer.images_seen - trainer.images_at_start) / max(run_seconds, 1e-6), 1),
           images_per_s_steady=steady_rate(work / "log.csv", trainer.warm_step))

    if stopping or spec.get("train_only"):  # the state is saved, nothing more is wanted (gpu_relay)
        return 0
    # What ships: the EMA generator, as a checkpoint (eval and the sheets open it like a user).
    G = trainer.G_ema
    # Module.to takes memory_format at run time; torch's stubs leave it out of every overload
    G.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    ckpt = work / f"{spec['name']}.safetensors"
    save_checkpoint(ckpt, G, {"name": spec["name"], "architecture": trainer.cfg.architecture,
                              "trained_on": {"images": trainer.images_seen, "steps": trainer.step}})
    try:
        report(phase="sheets")
        report(sheets=sample_sheets(ckpt, work / "sheets" / spec["name"], spec.get("sheet_cell", 128)))
    except Exception as exc:  # noqa: BLE001  a sheet failing must not cost the metrics
        report(sheets_error=f"{type(exc).__name__}: {exc}")
    report(phase="eval", eval_started=time.time())
    try:
        metrics = evaluate_model(G, spec["device"], spec["eval_samples"], spec["fd_samples"])
        write_json(work / "metrics.json", metrics)
        report(phase="done", eval_seconds=round(time.time() - status["eval_started"], 1))
    except Exception as exc:
        report(phase="eval failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
