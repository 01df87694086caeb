"""The way back from a GPU run, on the CPU machine: put the returned files in place.

    python -m models.training.gpu_return DIR          # DIR: the files gpu_run wrote to --out

For each model whose state came back:
 - checkpoints/warm/NAME.safetensors: the warm-start state, where the next GPU run finds it;
 - checkpoints/NAME.safetensors: the shipped generator (G_ema only, fp16), with the training
   history (device, images seen, minutes, runs) and the run's metrics in its header --
   unless a shipped file with more images seen is already there (override with --ship);
 - assets/NAME_*.png sample sheets and assets/NAME_metrics.json;
and checkpoints/warm/plan.json (what the next run should do: concurrency, memory format),
kernels/tuned_tiles.json (the run's GPU model's entry), assets/gpu_run_summary.json, and a
row appended to the README's training log table.

The files come from another machine, so they are untrusted input. Everything is checked
first -- the folder holds exactly what gpu_run writes, model names are exactly the models
the run was asked to train, every warm state opens and fits its model's config, every size
is bounded, every field the next run reads has the type it reads -- and only then is every
file put in place, together. Any refusal is one line (exit 2) and changes nothing.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.config import short_repr
from models.document.fileio import (
    AtomicTarget,
    FileProblem,
    JSONProblem,
    atomic_write_bytes,
    loads_checked,
    read_regular,
    temporary_target,
)
from models.io.bundled import DEFAULT_CHECKPOINTS, DEFAULT_GATE
from models.io.checkpoint import CheckpointError, load_checkpoint, read_info, save_checkpoint
from models.training.configs import GPU_CONFIGS, RELAY_ON_GPU, SMOKE_CONFIGS, TrainConfig
from models.training.gpu_run import BUNDLE, PLAN_FILE, ROOT, SUMMARY
from models.training.relay import MAX_STATE_BYTES, state_images
from models.training.state import TrainStateError, load_warm_state

LOG_START = "<!-- training-log:start -->"
LOG_END = "<!-- training-log:end -->"
MiB = 1 << 20
MAX_SHIPPED = 16 * MiB
# A warm state travels to the next GPU machine inside the working tree (64 MiB in all, five
# models): about 7.5 MiB each at 128 px, so anything above 8 MiB would stop the next run.
# With the objects' sprites rooms' is 9.1 MiB (session 16): such a run comes back --no-warm.
MAX_WARM_BYTES = 8 * MiB
MAX_SUMMARY_BYTES = 1 * MiB  # the real one is ~20 KB; it is copied into assets/
MAX_BUNDLE_BYTES = 16 * MiB  # compressed: gpu_run's limit for any returned file
MAX_UNPACKED_BYTES = 64 * MiB  # decompressed, headers included: a gzip bomb stops here
MAX_MEMBERS = 2000
MAX_SHEET_BYTES = 8 * MiB
MAX_TILES_BYTES = 1 * MiB
MAX_README_BYTES = 8 * MiB
MAX_COUNT = 10 ** 15  # images, steps: far above any run, small enough to format and sum
MAX_SECONDS = 1e9
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The sheets models/tools/showcase.py draws, as NAME_KIND.png: the only names a bundle's
# NAME/sheets/ may hold, and so the only files of assets/ a return can replace.
SHEET_KINDS = ("samples", "drag", "block", "style", "offsets")
# The top-level folders of a bundle (gpu_run.pack): kernels/ and one per model.
KERNELS_FOLDER = "kernels"
TUNED_TILES_MEMBER = "kernels/tuned_tiles.json"
TILE_KERNELS = ("fwd", "bwd_data", "bwd_weight")
MAX_TILE = 1024  # tile sizes, warps and stages are small powers of two (or 2..4 stages)
GPU_NAME_CHARS = 80
# The metrics of the log table, per model, in this order where present.
LOG_METRICS = (("realism_accuracy", "real/fake acc."), ("realism_accuracy_offsets_off", "acc. off"),
               ("co_move_tracked", "tracked co-move"), ("block_locality_levels", "block loc."),
               ("domain_fd", "FD"), ("co_move_ratio", "co-move"), ("kind_accuracy", "kinds"),
               ("part_accuracy", "parts"))


class ReturnError(Exception):
    """The returned files cannot be used; the message names the file and the problem."""


# ---- small checks ------------------------------------------------------------------------

def _require(ok: bool, where: str, must: str, value: Any) -> None:
    if not ok:
        raise ReturnError(f"{where} must be {must}, got {short_repr(value)}")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT


def _is_number(value: Any) -> bool:
    """An int or float the log and the headers can format (a 400-digit int overflows float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, float) or abs(value) < MAX_COUNT


def _is_seconds(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value) and 0 <= value < MAX_SECONDS


def _is_text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit


def _chars(limit: int) -> str:
    return f"a string of at most {limit} characters"


def _optional(check, value: Any, *args: Any) -> bool:
    return value is None or check(value, *args)


def _read(path: Path, limit: int, what: str) -> bytes:
    """A regular file of at most `limit` bytes (never a FIFO, a device or a folder)."""
    try:
        return read_regular(path, limit)
    except FileProblem as exc:
        raise ReturnError(f"{path}: {exc.problem} ({what})") from None


def _parse(data: bytes, what: str) -> Any:
    try:
        return loads_checked(data, what)
    except JSONProblem as exc:
        raise ReturnError(str(exc)) from None


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=1, sort_keys=True) + "\n").encode()


# ---- summary.json ------------------------------------------------------------------------

# What the next run reads from checkpoints/warm/plan.json (gpu_run.main, worker_specs,
# bench_phase, next_plan), field by field: anything else killed a run at its start.
PLAN_FIELDS = {
    "mode": (lambda v: v in ("concurrent", "sequential"), "'concurrent' or 'sequential'"),
    "channels_last": (lambda v: isinstance(v, bool), "true or false"),
    "concurrency_gain": (lambda v: _is_number(v) and math.isfinite(v) and 0 <= v < 1e6, "a number"),
    "other_format_speed": (lambda v: _is_number(v) and math.isfinite(v) and 0 <= v < 1e6, "a number"),
}


def check_plan(plan: Any, where: str) -> dict | None:
    """The run's next_plan, if it is one the next run can follow; None if there is none."""
    if plan is None or plan == {}:
        return None
    _require(isinstance(plan, dict), where, "an object", plan)
    for key, value in plan.items():
        if key not in PLAN_FIELDS:
            raise ReturnError(f"{where}: unknown field {short_repr(key)}; known: {sorted(PLAN_FIELDS)}")
        ok, must = PLAN_FIELDS[key]
        _require(ok(value), f"{where}.{key}", must, value)
    return plan


def clean_metrics(metrics: Any, where: str) -> dict[str, float | int | None]:
    """A model's metrics from the summary: names to numbers; NaN and infinities become None
    (JSON that every reader takes)."""
    if metrics is None:
        return {}
    _require(isinstance(metrics, dict) and len(metrics) <= 500, where, "an object of at most 500 numbers", metrics)
    clean: dict[str, float | int | None] = {}
    for key, value in metrics.items():
        _require(_is_text(key, 100), f"{where} names", "short strings", key)
        _require(_optional(_is_number, value), f"{where}.{key}", "a number or null", value)
        clean[key] = None if isinstance(value, float) and not math.isfinite(value) else value
    return clean


def check_result(name: str, result: Any, where: str) -> None:
    """The fields of one model's result that the way back reads; its metrics are replaced by
    their clean form (clean_metrics)."""
    _require(isinstance(result, dict), where, "an object", result)
    for key, limit in (("phase", 40), ("kernel_backend", 300)):
        _require(_optional(_is_text, result.get(key), limit), f"{where}.{key}", _chars(limit), result.get(key))
    _require(_optional(_is_seconds, result.get("train_seconds")), f"{where}.train_seconds", "seconds",
             result.get("train_seconds"))
    _require(_optional(_is_count, result.get("images_after")), f"{where}.images_after", "a count",
             result.get("images_after"))
    result["metrics"] = clean_metrics(result.get("metrics"), f"{where}.metrics") or None


def check_summary(summary: Any, path: Path) -> dict:
    """summary.json, checked field by field where the way back reads it. Model names must be
    models a GPU run can train (configs.GPU_CONFIGS): they become file names."""
    _require(isinstance(summary, dict), str(path), "a JSON object", type(summary).__name__)
    if summary.get("format") != "steergan-gpu-run":
        raise ReturnError(f"{path}: not a GPU run summary")
    _require(isinstance(summary.get("smoke", False), bool), f"{path}: smoke", "true or false", summary.get("smoke"))
    _require(_optional(_is_text, summary.get("started"), 40), f"{path}: started", _chars(40),
             summary.get("started"))
    machine = summary.get("machine")
    _require(_optional(lambda v: isinstance(v, dict), machine), f"{path}: machine", "an object", machine)
    for key in ("gpu", "device"):
        value = (machine or {}).get(key)
        _require(_optional(_is_text, value, 200), f"{path}: machine.{key}", _chars(200), value)
    models = summary.get("models")
    _require(_optional(lambda v: isinstance(v, dict), models), f"{path}: models", "an object", models)
    for name, result in (models or {}).items():
        if name not in GPU_CONFIGS:
            raise ReturnError(f"{path}: model {short_repr(name)} is not one a GPU run trains"
                              f" ({', '.join(GPU_CONFIGS)}); refused")
        check_result(name, result, f"{path}: models.{name}")
    check_plan(summary.get("next_plan"), f"{path}: next_plan")
    return summary


def read_summary(src: Path) -> tuple[dict, bytes]:
    """(the checked summary, its bytes as they came back, for assets/)."""
    path = src / SUMMARY
    try:
        data = read_regular(path, MAX_SUMMARY_BYTES)
    except FileProblem as exc:
        hint = f": is {src} the output folder of a GPU run?" if exc.problem == "no such file" else ""
        raise ReturnError(f"{path}: {exc.problem}{hint}") from None
    return check_summary(_parse(data, f"{path}"), path), data


# ---- the returned folder and its bundle --------------------------------------------------

def check_folder(src: Path, names: Collection[str]) -> list[str]:
    """The folder holds only what gpu_run writes: summary.json, bundle.tar.gz and a state per
    model of the run, each a regular file. No links (they point anywhere), no subfolders.
    -> the names of the atomic writer's temporaries of those files, passed over (never read): a
    run killed mid-write (its limit, SIGKILL) leaves one, and its finished files are good."""
    expected = {SUMMARY, BUNDLE} | {f"{n}.safetensors" for n in names}
    cut_short: list[str] = []
    try:
        entries = sorted(os.scandir(src), key=lambda e: e.name)
    except OSError as exc:
        raise ReturnError(f"{src}: cannot be listed ({exc.strerror or exc})") from None
    for entry in entries:
        where = f"{src}: {short_repr(entry.name)}"
        if entry.is_symlink():
            raise ReturnError(f"{where} is a symbolic link; refused (returned files must be plain files)")
        if entry.is_dir(follow_symlinks=False):
            raise ReturnError(f"{where} is a subfolder; a GPU run returns none")
        if not entry.is_file(follow_symlinks=False):
            raise ReturnError(f"{where} is not a regular file (a FIFO, socket or device); refused")
        if temporary_target(entry.name) in expected:
            cut_short.append(entry.name)
        elif entry.name not in expected:
            raise ReturnError(f"{where} is not a file a GPU run returns (summary.json, bundle.tar.gz, and"
                              f" NAME.safetensors for the run's models {sorted(names)})")
    return cut_short


class _CappedStream:
    """Reads `inner` and raises ReturnError past `limit` bytes. tarfile reads the decompressed
    archive through it, so a gzip bomb is refused after `limit` bytes, not after gigabytes."""

    def __init__(self, inner: io.BufferedIOBase, limit: int, where: str):
        self.inner, self.limit, self.where, self.count = inner, limit, where, 0

    def read(self, size: int = -1) -> bytes:
        room = self.limit + 1 - self.count
        data = self.inner.read(room if size is None or size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise ReturnError(f"{self.where}: unpacks to more than {self.limit // MiB} MiB; refused")
        return data


def _member_problem(name: str, models: Collection[str]) -> str | None:
    """Why an archive member's name is not one gpu_run.pack writes; None if it is."""
    parts = name.split("/")
    if not name or len(name) > 255 or name.startswith("/") or "\\" in name or "\0" in name:
        return "not a plain relative name"
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' part"
    if len(parts) > 3:
        return "is more than two folders deep"
    if len(parts) > 1 and parts[0] != KERNELS_FOLDER and parts[0] not in models:
        return f"is in a folder that is neither {KERNELS_FOLDER}/ nor one of the run's models {sorted(models)}"
    return None


def read_bundle(path: Path, models: Collection[str] = tuple(GPU_CONFIGS)) -> dict[str, bytes]:
    """The archive's regular files by name ({} if there is no archive). Bounded: at most 16 MiB
    packed, 64 MiB unpacked and 2,000 members; refuses links, devices, absolute names, '..',
    duplicates and folders other than kernels/ and those of `models`."""
    if not os.path.lexists(path):
        return {}
    packed = _read(path, MAX_BUNDLE_BYTES, "a returned file")
    files: dict[str, bytes] = {}
    stream = _CappedStream(gzip.GzipFile(fileobj=io.BytesIO(packed)), MAX_UNPACKED_BYTES, str(path))
    try:
        # "r|": one pass over the stream (through the cap), nothing seeks back or reads ahead.
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for m in tar:
                problem = _member_problem(m.name, models)
                if problem is None and not (m.isfile() or m.isdir()):
                    problem = "is a link or a special file"
                if problem is None and m.name in files:
                    problem = "appears twice"
                if problem is not None:
                    raise ReturnError(f"{path}: archive member {short_repr(m.name)} {problem}; refused")
                if m.isdir():
                    continue
                if len(files) >= MAX_MEMBERS:
                    raise ReturnError(f"{path}: more than {MAX_MEMBERS} files; refused")
                member = tar.extractfile(m)
                assert member is not None  # a regular file (checked above) always has its data
                files[m.name] = member.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ReturnError(f"{path}: not a readable .tar.gz ({short_repr(str(exc), 120)})") from None
    return files


def sheets_of(bundle: dict[str, bytes], names: Collection[str]) -> dict[str, dict[str, bytes]]:
    """Per model, its sample sheets as {file name in assets/: PNG bytes}. Only NAME_KIND.png
    of that model's own sheet kinds: a sheet never lands on another file of assets/."""
    sheets: dict[str, dict[str, bytes]] = {n: {} for n in names}
    for arc, data in bundle.items():
        parts = arc.split("/")
        if len(parts) != 3 or parts[1] != "sheets":
            continue
        name, file = parts[0], parts[2]
        if name not in sheets or file not in {f"{name}_{kind}.png" for kind in SHEET_KINDS}:
            raise ReturnError(f"{BUNDLE}: {short_repr(arc)} is not a sample sheet of the run's models"
                              f" (NAME/sheets/NAME_KIND.png, KIND one of {', '.join(SHEET_KINDS)}); refused")
        if len(data) > MAX_SHEET_BYTES or not data.startswith(PNG_MAGIC):
            raise ReturnError(f"{BUNDLE}: {arc} is not a PNG of at most {MAX_SHEET_BYTES // MiB} MiB; refused")
        sheets[name][file] = data
    return sheets


# ---- the tuned-tiles file (kernels.tune) -------------------------------------------------

def _tile_value(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_TILE


def check_tiles(tiles: Any, where: str) -> dict:
    """{gpu: {kernel: {field: int}}}, with known kernels and small positive integers (not
    true, not 10**300); the kernels still take only exact candidates when they read it."""
    shape_ok = isinstance(tiles, dict) and len(tiles) <= 100 and all(
        _is_text(gpu, 200) and isinstance(kernels, dict) and all(
            kernel in TILE_KERNELS and isinstance(fields, dict) and len(fields) <= 10
            and all(_is_text(f, 40) and _tile_value(v) for f, v in fields.items())
            for kernel, fields in kernels.items())
        for gpu, kernels in tiles.items())
    if not shape_ok:
        raise ReturnError(f"{where} is not {{gpu: {{kernel: {{field: integer 1..{MAX_TILE}}}}}}}")
    return tiles


def run_tiles(data: bytes | None, gpu: str | None) -> dict | None:
    """This run's GPU model's entry of the bundle's tuned-tiles file (kernels.tune), checked
    for its shape before anything is written; None where the run tuned nothing for it."""
    if data is None or not gpu:
        return None
    where = f"{TUNED_TILES_MEMBER} in the bundle"
    if len(data) > MAX_TILES_BYTES:
        raise ReturnError(f"{where} is over {MAX_TILES_BYTES // MiB} MiB; refused")
    return check_tiles(_parse(data, where), where).get(gpu)


def home_tiles(target: Path) -> dict:
    """The repository's tuned-tiles file, read before anything is written (the run's entry is
    merged into it at the end: only that entry, since the file may have gained others since
    the run copied it). The kernels take only exact candidates when they read it."""
    if not os.path.lexists(target):
        return {}
    try:
        home = loads_checked(read_regular(target, MAX_TILES_BYTES), "it")
    except (FileProblem, JSONProblem) as exc:
        problem = exc.problem if isinstance(exc, FileProblem) else str(exc)
        raise ReturnError(f"{target}: cannot be read as JSON ({problem}); fix or remove it, then run this again"
                          ) from None
    if not isinstance(home, dict):
        raise ReturnError(f"{target}: not a JSON object; fix or remove it, then run this again")
    return home


# ---- the models' states ------------------------------------------------------------------

def check_warm_info(info: dict, where: str) -> None:
    """The fields of a warm state that the next run (gpu_worker.WarmTrainer: int(), float(),
    history.get) and the shipped checkpoint's header read, of the types they read them as."""
    _require(isinstance(info.get("config"), dict), f"{where}: info.config", "an object", info.get("config"))
    for key in ("step", "images_seen"):
        _require(_is_count(info.get(key)), f"{where}: info.{key}", "a non-negative integer", info.get(key))
    # absent is 0 s to the next run (float(info.get("train_seconds", 0.0))); null is not a number
    _require(_is_seconds(info.get("train_seconds", 0.0)), f"{where}: info.train_seconds", "seconds",
             info.get("train_seconds"))
    _require(_optional(_is_text, info.get("device"), 200), f"{where}: info.device", _chars(200), info.get("device"))
    history = info.get("history")
    _require(_optional(lambda v: isinstance(v, dict), history), f"{where}: info.history", "an object", history)
    runs, curve = (history or {}).get("runs", []), (history or {}).get("curve", [])
    _require(isinstance(runs, list) and len(runs) <= 10_000 and all(isinstance(r, dict) for r in runs),
             f"{where}: info.history.runs", "a list of objects", runs)
    _require(isinstance(curve, list) and len(curve) <= 100_000 and all(
        isinstance(p, list) and len(p) <= 8 and all(_optional(_is_number, v) for v in p) for p in curve),
        f"{where}: info.history.curve", "a list of lists of numbers", curve)


def fits_the_run(state: Path, cfg: TrainConfig) -> None:
    """Raise TrainStateError unless the next run can warm-start `cfg` from `state`: the very
    check its worker makes (architecture, dataset, D's input, recipe, every weight's shape)."""
    import torch

    from models.training.gpu_worker import WarmTrainer

    with tempfile.TemporaryDirectory(prefix="steergan-return-") as work, torch.random.fork_rng(devices=[]):
        WarmTrainer(cfg, Path(work), "cpu").warm_start(state)


def shipped_meta(name: str, info: dict, metrics: dict | None, run: dict) -> dict:
    """The shipped checkpoint's header. The metrics the remote file claims for the default's
    gate (bundled.DEFAULT_GATE) are not stored as its metrics: the default must be chosen by
    metrics measured here (`steergan eval CHECKPOINT --store`), so they are kept only as what
    the run reported."""
    cfg = info.get("config") or {}
    runs = (info.get("history") or {}).get("runs", [])
    claimed = dict(metrics or {})
    return {"name": name, "architecture": cfg.get("architecture"),
            "trained_on": {"dataset": cfg.get("dataset"), "images": info.get("images_seen"), "steps": info.get("step"),
                           "minutes": round(float(info.get("train_seconds", 0)) / 60, 2), "device": info.get("device"),
                           "training_config": cfg, "runs": runs},
            "metrics": {k: v for k, v in claimed.items() if k not in DEFAULT_GATE},
            "gpu_run": {**run, "reported_metrics": claimed}}


def ship_checkpoint(path: Path, modules: dict, architecture_name: str, meta: dict) -> int:
    """Write the shipped checkpoint (G_ema in fp16) to `path` -- a staging file -- and check
    that it opens as the studio will open it. -> its size."""
    from models.config import architecture
    from models.nets.generator import Generator

    G = Generator(architecture(architecture_name))
    try:
        G.load_state_dict(modules["G_ema"])
    except RuntimeError as exc:
        raise ReturnError(f"G_ema does not fit architecture {architecture_name!r}: {str(exc)[:300]}") from None
    try:
        save_checkpoint(path, G, meta)
        load_checkpoint(path)  # opens as the studio will open it
    except CheckpointError as exc:
        raise ReturnError(f"the shipped checkpoint does not open: {exc.problem}") from None
    size = path.stat().st_size
    if size > MAX_SHIPPED:
        raise ReturnError(f"{path.name}: {size / MiB:.1f} MiB, over the 16 MiB a shipped checkpoint may have")
    return size


def existing_images(path: Path) -> int | None:
    try:
        return int((read_info(path).meta.get("trained_on") or {}).get("images") or 0)
    except (CheckpointError, ValueError, TypeError, OverflowError):
        return None


@dataclass
class Checked:
    """One model's returned files, checked: what to put where, and what to report."""
    entry: dict
    files: list[tuple[Path, bytes]] = field(default_factory=list)
    shipped: bool = False


def check_model(name: str, result: dict, summary: dict, src: Path, repo: Path, staging: Path,
                sheets: dict[str, bytes], ship: list[str] | None, keep_warm: bool = True) -> Checked | None:
    """Everything about one model, checked, its files built in `staging`; nothing written to
    `repo`. None where no state came back. `keep_warm` False: the state only gives the shipped
    checkpoint (the next run starts from that generator with a fresh D, gpu_run)."""
    state = src / f"{name}.safetensors"
    if not os.path.lexists(state):
        return None
    cfg = (SMOKE_CONFIGS if summary.get("smoke") else GPU_CONFIGS)[name]
    if name in RELAY_ON_GPU:
        data = _read(state, MAX_STATE_BYTES, f"a relay state may be at most {MAX_STATE_BYTES // MiB} MiB")
    elif keep_warm:
        data = _read(state, MAX_WARM_BYTES, f"a warm state kept may be at most {MAX_WARM_BYTES // MiB} MiB: the next"
                                            " run must travel (--no-warm keeps only the shipped checkpoints)")
    else:
        data = _read(state, MAX_SHIPPED, f"a returned state may be at most {MAX_SHIPPED // MiB} MiB")
    staged = staging / f"{name}.warm.safetensors"
    staged.write_bytes(data)  # checked as the bytes that will be put in place, not the path
    try:
        modules, info = load_warm_state(staged)
        check_warm_info(info, str(state))
        fits_the_run(staged, cfg)
    except TrainStateError as exc:
        raise ReturnError(f"{state}: {exc.problem}") from None
    if name in RELAY_ON_GPU:
        return relay_state(name, info, data, repo, state)
    warm_dir, ckpt_dir = repo / "checkpoints" / "warm", repo / "checkpoints"
    warm_target = warm_dir / state.name
    # A run whose warm start was refused there trains from scratch (gpu_worker.build): its state
    # must not replace the one here that has seen more (--ship NAME: replace it anyway).
    warm_before = state_images(warm_target) if keep_warm and not (ship and name in ship) else 0
    if not keep_warm:
        checked = Checked({"warm": "not kept (--no-warm)", "images": info["images_seen"]})
    elif warm_before > info["images_seen"]:
        checked = Checked({"warm": f"{warm_target} has {warm_before} images seen, this run {info['images_seen']}:"
                                   " not replaced", "images": info["images_seen"]})
    else:
        checked = Checked({"warm": str(warm_target), "images": info["images_seen"]}, [(warm_target, data)])
    target = ckpt_dir / f"{name}.safetensors"
    old = existing_images(target) if target.exists() else None
    if not ((ship and name in ship) or old is None or info["images_seen"] >= old):
        checked.entry["kept"] = f"{target} has {old} images seen, this run {info['images_seen']}: not replaced"
        return checked
    machine = summary.get("machine") or {}
    run = {"date": summary.get("started"), "device": machine.get("gpu"), "phase": result.get("phase"),
           "kernel_backend": result.get("kernel_backend")}
    metrics = result.get("metrics")
    staged_ckpt = staging / f"{name}.safetensors"
    try:
        size = ship_checkpoint(staged_ckpt, modules, cfg.architecture, shipped_meta(name, info, metrics, run))
    except ReturnError as exc:
        raise ReturnError(f"{state}: {exc}") from None
    checked.files.append((target, staged_ckpt.read_bytes()))
    checked.files += [(repo / "assets" / file, png) for file, png in sorted(sheets.items())]
    if metrics:
        checked.files.append((repo / "assets" / f"{name}_metrics.json", _json_bytes(metrics)))
    checked.entry.update(shipped_bytes=size, shipped=str(target))
    checked.shipped = True
    return checked


def relay_state(name: str, info: dict, data: bytes, repo: Path, returned: Path) -> Checked:
    """The relay model's returned state becomes the relay's own (checkpoints/relay/NAME), where
    it has seen more images than that and no relay run is unfinished (that run would
    otherwise continue its own state and its finish overwrite this one). Nothing is shipped:
    the relay's finish measures the model here and ships it through its gate."""
    target = repo / "checkpoints" / "relay" / f"{name}.safetensors"
    unfinished = repo / "runs" / "relay" / name / "state.safetensors"
    entry: dict[str, Any] = {"relay_state": str(target), "images": info["images_seen"]}
    from models.training.relay import finishing_pid, running

    # (a relay running before its first save has no state file yet: its record says it runs)
    if unfinished.exists() or running(unfinished.parent.parent) or finishing_pid(unfinished.parent.parent):
        entry["kept"] = (f"an unfinished relay run (in {unfinished}, or running or finishing now): finish it,"
                         f" then continue this state with `steergan relay start --from {returned}`")
        return Checked(entry)
    before = state_images(target)  # 0 for a damaged one: a good state replaces it
    if before >= info["images_seen"]:
        entry["kept"] = f"{target} has {before} images seen, this run {info['images_seen']}: not replaced"
        return Checked(entry)
    return Checked(entry, [(target, data)])


# ---- the README's training log ------------------------------------------------------------

def _cell(text: str, limit: int) -> str:
    """Text from the returned files as one README table cell: printable characters only, none
    of < > | ` (no HTML, no marker comment, no extra column), one line, at most `limit`."""
    clean = "".join(ch if ch.isprintable() and ch not in "<>|`" else " " for ch in text)
    return " ".join(clean.split())[:limit] or "?"


def _log_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def log_row(summary: dict, shipped: list[str]) -> str:
    m = summary.get("machine") or {}
    models = summary.get("models") or {}
    minutes = max([float(r.get("train_seconds") or 0) for r in models.values()] or [0]) / 60
    images = ", ".join(f"{n} {r.get('images_after') or 0:,}" for n, r in models.items())
    metrics = []
    for n, r in models.items():
        met = r.get("metrics") or {}
        parts = [f"{label} {met[k]:.3g}" for k, label in LOG_METRICS if _log_number(met.get(k))]
        if parts:
            metrics.append(f"{n}: " + ", ".join(parts))
    gpu = _cell(str(m.get("gpu") or m.get("device") or "?"), GPU_NAME_CHARS) + (" (smoke)" if summary.get("smoke")
                                                                                else "")
    date = _cell(str(summary.get("started") or "?"), 40)
    date = f"{date[:4]}-{date[4:6]}-{date[6:8]} {date[9:11]}:{date[11:13]}" if len(date) >= 13 else date
    ship = ", ".join(shipped) or "none"
    return f"| {date} | {gpu} | {minutes:.1f} | {images} | {'; '.join(metrics) or 'not measured'} | {ship} |"


def readme_with_row(readme: Path, text: str, row: str, start: str = LOG_START, end: str = LOG_END) -> str:
    """`text` with `row` appended to the table between the markers `start` and `end`."""
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ReturnError(f"{readme}: no training log table (the markers {start} and {end}, in that order)")
    table, _, tail = rest.partition(end)
    return head + start + table.rstrip("\n") + "\n" + row + "\n" + end + tail


def _readme_text(readme: Path) -> str:
    try:
        return _read(readme, MAX_README_BYTES, "the README").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReturnError(f"{readme}: not UTF-8 ({exc.reason})") from None


def append_log_row(readme: Path, row: str, start: str = LOG_START, end: str = LOG_END) -> None:
    """Append `row` to the README table between the markers `start` and `end` (the GPU
    run's training log by default; the relay's has its own)."""
    new = readme_with_row(readme, _readme_text(readme), row, start, end)
    atomic_write_bytes(readme, new.encode("utf-8"))


# ---- putting it all in place ----------------------------------------------------------------

def put_in_place(files: list[tuple[Path, bytes]]) -> None:
    """Write every file to a temporary beside its target first, then rename them all: a full
    disk or a refused target leaves every target as it was."""
    targets: list[AtomicTarget] = []
    committed = 0
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            target = AtomicTarget(path)
            targets.append(target)
            with open(target.tmp, "wb") as f:
                f.write(data)
            if os.stat(target.tmp).st_size != len(data):
                raise OSError(f"wrote {os.stat(target.tmp).st_size} of {len(data)} bytes to {path}")
        for target in targets:
            target.commit()
            committed += 1
    except OSError as exc:
        for target in targets:
            target.discard()
        done = f"{committed} of {len(files)} files were already replaced" if committed else "nothing was replaced"
        raise ReturnError(f"cannot write the returned files ({exc.strerror or exc}); {done}") from None


def bring_back(src: Path, repo: Path = ROOT, allow_smoke: bool = False, ship: list[str] | None = None,
               readme: bool = True, say=print, keep_warm: bool = True) -> dict:
    """Check everything `src` holds, then put its files in place under `repo` together.
    -> what was done, per model. ReturnError (nothing written) if anything is refused."""
    summary, summary_bytes = read_summary(src)
    if summary.get("smoke") and not allow_smoke:
        raise ReturnError(f"{src} is a smoke run (tiny CPU models): pass --allow-smoke to bring it back anyway")
    results: dict = summary.get("models") or {}
    cut_short = check_folder(src, results)
    bundle = read_bundle(src / BUNDLE, results)
    sheets = sheets_of(bundle, results)
    gpu = (summary.get("machine") or {}).get("gpu")
    tiles = None if summary.get("smoke") else run_tiles(bundle.get(TUNED_TILES_MEMBER), gpu)
    tiles_file = repo / "kernels" / "tuned_tiles.json"
    readme_path = repo / "README.md"
    readme_text = _readme_text(readme_path) if readme else ""
    done: dict[str, dict] = {}
    files: list[tuple[Path, bytes]] = []
    shipped: list[str] = []
    notes: list[str] = []  # said once everything is in place: a refusal is the only line
    notes += [f"{src / name}: a write cut short when the run was stopped; passed over" for name in cut_short]
    with tempfile.TemporaryDirectory(prefix="steergan-return-") as staging:
        for name, result in results.items():
            checked = check_model(name, result, summary, src, repo, Path(staging), sheets[name], ship, keep_warm)
            if checked is None:
                notes.append(f"{name}: no state came back ({result.get('phase')}): nothing to do")
                continue
            files += checked.files
            done[name] = checked.entry
            if result.get("images_after") is None:  # a run killed before this model's end: its state says
                result["images_after"] = checked.entry["images"]
            if checked.shipped:
                shipped.append(name)
    plan = check_plan(summary.get("next_plan"), "next_plan")
    if plan is not None:
        files.append((repo / "checkpoints" / "warm" / PLAN_FILE, _json_bytes(plan)))
    if tiles is not None and gpu:
        files.append((tiles_file, _json_bytes({**home_tiles(tiles_file), gpu: tiles})))
        done["tuned_tiles"] = {"file": str(tiles_file), "gpu": gpu, "kernels": sorted(tiles)}
    files.append((repo / "assets" / "gpu_run_summary.json", summary_bytes))  # as it came back, size checked
    row = log_row(summary, shipped)
    if readme:
        files.append((readme_path, readme_with_row(readme_path, readme_text, row).encode("utf-8")))
    put_in_place(files)
    for note in notes:
        say(note)
    for name, entry in done.items():
        say(f"{name}: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
    for name in shipped:
        if f"{name}.safetensors" in {p.name for p in DEFAULT_CHECKPOINTS}:
            say(f"{name}: shipped without the run's {'/'.join(DEFAULT_GATE)} (what decides the default): measure"
                f" them here, `steergan eval checkpoints/{name}.safetensors --store`, before it can become the default")
    if readme:
        say(f"README training log: {row}")
    return done


def _one_line(text: str, limit: int = 600) -> str:
    return " ".join(text.split())[:limit]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.training.gpu_return", description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path, help="the folder of files a GPU run returned")
    p.add_argument("--repo", type=Path, default=ROOT, help="the repository to update (default this one)")
    p.add_argument("--allow-smoke", action="store_true", help="accept a CPU smoke run (for tests)")
    p.add_argument("--ship", nargs="+", help="ship these models even if a checkpoint with more images exists")
    p.add_argument("--no-readme", action="store_true", help="do not append to the README's training log")
    p.add_argument("--no-warm", action="store_true",
                   help="keep no warm states (the tree that travels has no room): the next run continues each"
                        " model from its shipped generator with a fresh D")
    args = p.parse_args(argv)
    try:
        bring_back(args.dir, args.repo, args.allow_smoke, args.ship, not args.no_readme, keep_warm=not args.no_warm)
    except ReturnError as exc:
        print(f"gpu_return: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
