"""Training state on disk, for exact resumption: G, D, G_ema, both optimisers, the step and
every random generator. safetensors for tensors + JSON for the rest: never a pickle.

A state file given to --resume may be anything; `load_train_state` checks all of it (the
container, the JSON, and, given the modules and optimisers it will be loaded into, every
name and shape) before a tensor is read, and raises TrainStateError naming the file and
the problem, so that loading it afterwards cannot fail."""
from __future__ import annotations

import json
import math
import os
from typing import Any

import torch

from models.document.fileio import FileError, FileProblem, atomic_write_bytes, open_regular
from models.io.safetensors_io import SafetensorsHeader, SafetensorsProblem, parse_json, read_tensor, tagged_metadata
from models.io.safetensors_io import read_header as read_safetensors_header

STATE_FORMAT = "steergan-train-state"
STATE_VERSION = 1
META_KEY = "steergan_train"


class TrainStateError(FileError):
    """A training state cannot be written or resumed from."""


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}/state/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                meta.setdefault(f"{prefix}/scalars", {})[f"{idx}/{key}"] = value
    meta[f"{prefix}/param_groups"] = sd["param_groups"]


def save_train_state(path: str | os.PathLike, modules: dict[str, torch.nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer], rngs: dict[str, torch.Tensor],
                     info: dict[str, Any]) -> None:
    """Write atomically; TrainStateError (the previous state file kept) if it cannot be."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"format": STATE_FORMAT, "version": STATE_VERSION, "info": info}
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{name}/{k}"] = v.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        _flatten_optimizer(f"opt_{name}", opt, tensors, meta)
    for name, state in rngs.items():
        tensors[f"rng/{name}"] = state.cpu().contiguous()
    try:
        atomic_write_bytes(path, save(tensors, metadata={META_KEY: json.dumps(meta)}))
    except OSError as exc:
        raise TrainStateError(path, f"cannot be written ({exc.strerror or exc}); the state that was there"
                                    " is kept") from None


class _Bad(Exception):
    """A problem found while checking; becomes TrainStateError with the path."""


def load_train_state(path: str | os.PathLike, expect_modules: dict[str, torch.nn.Module] | None = None,
                     expect_optimizers: dict[str, torch.optim.Optimizer] | None = None,
                     ) -> tuple[dict[str, dict], dict[str, dict], dict[str, torch.Tensor], dict]:
    """-> (module state dicts, optimizer state dicts, rng states, info).

    With `expect_modules` / `expect_optimizers` (what the state will be loaded into), the
    file must hold exactly their tensors, shapes and parameter groups."""
    try:
        f = open_regular(path)
    except FileProblem as exc:
        if exc.problem == "no such file":
            raise TrainStateError(path, "no such training state file") from None
        raise TrainStateError(path, exc.problem) from None
    try:
        with f:
            header = read_safetensors_header(f)
            meta = _meta(path, header)
            _check_names(header, meta, expect_modules, expect_optimizers)
            tensors = {name: read_tensor(f, header, name) for name in header.tensors}
    except SafetensorsProblem as exc:
        raise TrainStateError(path, str(exc)) from None
    except _Bad as exc:
        raise TrainStateError(path, f"not a usable training state: {exc}") from None
    except OSError as exc:
        raise TrainStateError(path, f"cannot be read: {exc.strerror or exc}") from None
    modules: dict[str, dict] = {}
    rngs: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        head, rest = name.split("/", 1)
        if head == "rng":
            rngs[rest] = value
        elif not head.startswith("opt_"):
            modules.setdefault(head, {})[rest] = value
    opt_names = {k.split("/", 1)[0] for k in meta if k.startswith("opt_")}
    optimizers = {n[4:]: _unflatten_optimizer(n, tensors, meta) for n in opt_names}
    return modules, optimizers, rngs, meta["info"]


def _unflatten_optimizer(prefix: str, tensors: dict, meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "/state/"):
            idx, key = name[len(prefix) + 7:].split("/", 1)
            state.setdefault(int(idx), {})[key] = value
    for k, value in meta.get(f"{prefix}/scalars", {}).items():
        idx, key = k.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta[f"{prefix}/param_groups"]}


# ---- checks -------------------------------------------------------------------------------

def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _meta(path: str | os.PathLike, header: SafetensorsHeader) -> dict[str, Any]:
    raw = header.metadata.get(META_KEY)
    if raw is None:
        raise TrainStateError(path, "not a SteerGAN training state (a shipped checkpoint cannot be resumed;"
                                    " pass the run's train_state.safetensors)")
    meta = parse_json(raw, "its training metadata")
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise _Bad("its metadata is not a SteerGAN training state description")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= STATE_VERSION:
        raise TrainStateError(path, f"unsupported training state format {meta.get('format')}"
                                    f" v{str(version)[:20]}; this SteerGAN reads up to v{STATE_VERSION}")
    info = meta.get("info")
    if not isinstance(info, dict):
        raise _Bad("'info' must be an object")
    for key in ("step", "images_seen"):
        if isinstance(info.get(key), bool) or not isinstance(info.get(key), int) or info[key] < 0:
            raise _Bad(f"info.{key} must be a non-negative integer, got {str(info.get(key))[:40]}")
    if "train_seconds" in info and not (_number(info["train_seconds"]) and info["train_seconds"] >= 0):
        raise _Bad(f"info.train_seconds must be a non-negative number, got {str(info['train_seconds'])[:40]}")
    for key, value in meta.items():
        if key.endswith("/param_groups"):
            if not isinstance(value, list) or not all(isinstance(g, dict) for g in value):
                raise _Bad(f"{key} must be a list of objects")
        elif key.endswith("/scalars"):
            if not isinstance(value, dict) or not all(_idx_key(k) and _number(v) for k, v in value.items()):
                raise _Bad(f"{key} must map 'index/name' to numbers")
    return meta


def _idx_key(text: str) -> bool:
    idx, _, key = text.partition("/")
    return idx.isdigit() and len(idx) <= 6 and bool(key)


def _check_names(header: SafetensorsHeader, meta: dict[str, Any], modules: dict[str, torch.nn.Module] | None,
                 optimizers: dict[str, torch.optim.Optimizer] | None) -> None:
    """Every tensor name is one the loader understands; with expectations, exactly those."""
    for name in header.tensors:
        head, sep, rest = name.partition("/")
        if not sep or not rest:
            raise _Bad(f"tensor name {name[:60]!r} is not 'part/name'")
        if head.startswith("opt_"):
            kind, _, idx_key = rest.partition("/")
            if kind != "state" or not _idx_key(idx_key):
                raise _Bad(f"optimizer tensor {name[:60]!r} is not 'opt_X/state/index/name'")
            if f"{head}/param_groups" not in meta:
                raise _Bad(f"optimizer {head[4:]!r} has state but no param_groups")
    if modules is not None:
        _check_modules(header, modules)
        _check_rngs(header)
    if optimizers is not None:
        for name, opt in optimizers.items():
            _check_optimizer(header, meta, name, opt)


def _check_modules(header: SafetensorsHeader, modules: dict[str, torch.nn.Module]) -> None:
    for part, module in modules.items():
        expected = {f"{part}/{k}": v for k, v in module.state_dict().items()}
        present = {k for k in header.tensors if k.startswith(part + "/")}
        missing, unexpected = sorted(set(expected) - present), sorted(present - set(expected))
        if missing or unexpected:
            raise _Bad(f"{part} does not match this training config: missing {missing[:3]}, unexpected"
                       f" {[u[:60] for u in unexpected[:3]]}")
        for name, tensor in expected.items():
            entry = header.tensors[name]
            if entry.shape != tuple(tensor.shape) or entry.dtype != tensor.dtype:
                raise _Bad(f"tensor {name!r} is {entry.dtype} {entry.shape}, this training config needs"
                           f" {tensor.dtype} {tuple(tensor.shape)}")
    allowed = set(modules) | {"rng"}
    strays = sorted({k.split("/", 1)[0] for k in header.tensors} - allowed)
    strays = [s for s in strays if not s.startswith("opt_")]
    if strays:
        raise _Bad(f"holds parts this trainer does not have: {[s[:40] for s in strays[:3]]}")


def _check_rngs(header: SafetensorsHeader) -> None:
    size = torch.get_rng_state().numel()
    for name in ("rng/data", "rng/torch"):
        entry = header.tensors.get(name)
        if entry is None:
            raise _Bad(f"the random generator state {name!r} is missing")
        if entry.dtype != torch.uint8 or entry.shape != (size,):
            raise _Bad(f"the random generator state {name!r} is {entry.dtype} {entry.shape}, not uint8 ({size},)")
    cuda = header.tensors.get("rng/cuda")
    if cuda is not None and (cuda.dtype != torch.uint8 or len(cuda.shape) != 1):
        raise _Bad("the CUDA random generator state is not a uint8 vector")


def _check_optimizer(header: SafetensorsHeader, meta: dict[str, Any], name: str, opt: torch.optim.Optimizer) -> None:
    prefix = f"opt_{name}"
    expected = opt.state_dict()["param_groups"]
    groups = meta.get(f"{prefix}/param_groups")
    if groups is None:
        raise _Bad(f"the optimizer state of {name} is missing")
    if len(groups) != len(expected):
        raise _Bad(f"optimizer {name} has {len(groups)} parameter groups, this training config {len(expected)}")
    params = [p for group in opt.param_groups for p in group["params"]]
    for got, want in zip(groups, expected):
        if set(got) != set(want):
            raise _Bad(f"optimizer {name}'s settings are {sorted(got)[:12]}, expected {sorted(want)}")
        if got["params"] != want["params"]:
            raise _Bad(f"optimizer {name}'s parameter list does not match this training config")
        for key, value in want.items():
            if key != "params" and not _same_kind(got[key], value):
                raise _Bad(f"optimizer {name}'s setting {key!r} is {str(got[key])[:40]}, expected a value like"
                           f" {value!r}")
    for tname, entry in header.tensors.items():
        if not tname.startswith(prefix + "/state/"):
            continue
        idx, key = tname[len(prefix) + 7:].split("/", 1)
        if int(idx) >= len(params):
            raise _Bad(f"optimizer {name} has state for parameter {idx}; there are {len(params)}")
        shape = tuple(params[int(idx)].shape)
        want = () if key == "step" else shape
        if entry.shape != want or not entry.dtype.is_floating_point:
            raise _Bad(f"optimizer tensor {tname!r} is {entry.dtype} {entry.shape}, expected float {want}")


def _same_kind(got: Any, want: Any) -> bool:
    """A JSON value that can stand where `want` stood (tuples come back as lists)."""
    if want is None or isinstance(want, bool):
        return got is None or isinstance(got, bool) if want is None else isinstance(got, bool)
    if isinstance(want, (int, float)):
        return _number(got)
    if isinstance(want, (list, tuple)):
        return isinstance(got, list) and len(got) == len(want) and all(_same_kind(g, w) for g, w in zip(got, want))
    return isinstance(got, type(want))


# ---- the small warm-start state that a GPU run ships back ----------------------------
# G, G_ema and D in half precision, no optimiser moments (Adam's m and v would double the
# size; they rebuild in a few hundred steps): about 8 MiB for a 128 px model, so four of
# them fit in the 64 MiB the GPU machine receives. JSON beside the tensors: the training
# config, images seen, step, training seconds, and the history of runs and loss curve.
WARM_FORMAT = "steergan-warm-state"
WARM_VERSION = 1
WARM_MODULES = ("G", "G_ema", "D")


def _half(t: torch.Tensor) -> torch.Tensor:
    """fp16 (10 mantissa bits) where the values fit, else bf16 (fp16 overflows past 65504)."""
    t = t.detach().cpu()
    if not t.is_floating_point():
        return t.contiguous()
    if t.numel() == 0 or float(t.abs().max()) < 60000:
        return t.to(torch.float16).contiguous()
    return t.to(torch.bfloat16).contiguous()


def save_warm_state(path: str | os.PathLike, modules: dict[str, torch.nn.Module], info: dict[str, Any]) -> bytes:
    """Write the warm-start state atomically; returns the bytes written (for size checks)."""
    from safetensors.torch import save

    tensors: dict[str, torch.Tensor] = {}
    for name in WARM_MODULES:
        for k, v in modules[name].state_dict().items():
            tensors[f"{name}/{k}"] = _half(v)
    meta = {"format": WARM_FORMAT, "version": WARM_VERSION, "info": info}
    data = save(tensors, metadata={"steergan_warm": json.dumps(meta)})
    atomic_write_bytes(path, data)
    return data


def load_warm_state(path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """-> (state dicts of G, G_ema, D in float32, info). Refuses non-finite weights."""
    # The same checked reader as the training state: a FIFO, deep JSON or a header that
    # does not fit the file is a TrainStateError, never a hang or a traceback.
    try:
        f = open_regular(path)
    except FileProblem as exc:
        raise TrainStateError(path, exc.problem) from None
    try:
        with f:
            header = read_safetensors_header(f)
            meta = tagged_metadata(header, "steergan_warm", WARM_FORMAT, WARM_VERSION, "warm-start state")
            if not isinstance(meta.get("info"), dict):
                raise TrainStateError(path, "has warm-start metadata without its info")
            tensors = {name: read_tensor(f, header, name) for name in header.tensors}
    except SafetensorsProblem as exc:
        raise TrainStateError(path, str(exc)) from None
    except OSError as exc:
        raise TrainStateError(path, f"cannot be read: {exc.strerror or exc}") from None
    modules: dict[str, dict[str, torch.Tensor]] = {name: {} for name in WARM_MODULES}
    for key, value in tensors.items():
        head, _, rest = key.partition("/")
        if head not in modules:
            raise TrainStateError(path, f"unexpected tensor {key!r}")
        if value.is_floating_point():
            if not torch.isfinite(value).all():
                raise TrainStateError(path, f"tensor {key!r} holds non-finite values")
            value = value.float()
        modules[head][rest] = value
    missing = [name for name in WARM_MODULES if not modules[name]]
    if missing:
        raise TrainStateError(path, f"the warm-start state has no weights for {missing}")
    return modules, meta["info"]


def saved_kind(path: str | os.PathLike) -> str | None:
    """"warm" (a warm-start state), "checkpoint" (a shipped generator), "train" (a full
    training state, `--resume`'s) or None (anything else, unreadable included: the loader that
    is then tried says what is wrong), from the safetensors header only."""
    try:
        with open_regular(path) as f:
            metadata = read_safetensors_header(f).metadata
    except (FileProblem, SafetensorsProblem, OSError):
        return None
    if "steergan_warm" in metadata:
        return "warm"
    if META_KEY in metadata:
        return "train"
    return "checkpoint" if "steergan" in metadata else None


def warm_state_from_checkpoint(path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """A shipped checkpoint as a warm start: -> (state dicts of G and G_ema, both its EMA
    generator; info as load_warm_state gives it, from the checkpoint's `trained_on`). It holds
    no discriminator, so a run from it starts D afresh: the way to continue a shipped model
    that has no relay state (figures-cpu was trained before the relay existed)."""
    from models.io.checkpoint import CheckpointError, load_checkpoint

    try:
        generator, info = load_checkpoint(path)
    except CheckpointError as exc:
        raise TrainStateError(path, exc.problem) from None
    trained_on = info.meta.get("trained_on")
    trained: dict[str, Any] = trained_on if isinstance(trained_on, dict) else {}

    def count(key: str) -> float:
        value = trained.get(key, 0)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 else 0.0

    weights = {k: v.detach().clone() for k, v in generator.state_dict().items()}
    run = {"from_checkpoint": str(path), "images_start": int(count("images"))}
    return ({"G": weights, "G_ema": {k: v.clone() for k, v in weights.items()}},
            {"config": {"architecture": info.meta.get("architecture"),
                        **({"dataset": trained["dataset"]} if "dataset" in trained else {})},
             "step": int(count("steps")), "images_seen": int(count("images")),
             "train_seconds": round(count("minutes") * 60, 1), "history": {"runs": [run], "curve": []}})
