"""Training state on disk, for exact resumption: G, D, G_ema, both optimisers, the step and
every random generator. safetensors for tensors + JSON for the rest: never a pickle."""
from __future__ import annotations

import json
import os
from typing import Any

import torch

from ..fileio import atomic_write_bytes

STATE_FORMAT = "steergan-train-state"
STATE_VERSION = 1


class TrainStateError(Exception):
    pass


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}/state/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                meta.setdefault(f"{prefix}/scalars", {})[f"{idx}/{key}"] = value
    meta[f"{prefix}/param_groups"] = sd["param_groups"]


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


def save_train_state(path: str | os.PathLike, modules: dict[str, torch.nn.Module],
                     optimizers: dict[str, torch.optim.Optimizer], rngs: dict[str, torch.Tensor],
                     info: dict[str, Any]) -> None:
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
    atomic_write_bytes(path, save(tensors, metadata={"steergan_train": json.dumps(meta)}))


def load_train_state(path: str | os.PathLike) -> tuple[dict[str, dict], dict[str, dict], dict[str, torch.Tensor], dict]:
    """-> (module state dicts, optimizer state dicts, rng states, info)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("steergan_train")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise TrainStateError(f"{path}: no such training state file") from None
    except (SafetensorError, OSError) as exc:
        raise TrainStateError(f"{path}: not a readable safetensors training state ({exc})") from None
    if raw is None:
        raise TrainStateError(f"{path}: not a SteerGAN training state (a shipped checkpoint cannot be resumed;"
                              " pass the run's train_state.safetensors)")
    meta = json.loads(raw)
    if meta.get("format") != STATE_FORMAT or meta.get("version", 0) > STATE_VERSION:
        raise TrainStateError(f"{path}: unsupported training state format {meta.get('format')} v{meta.get('version')}")
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
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("steergan_warm")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise TrainStateError(f"{path}: no such warm-start state file") from None
    except (SafetensorError, OSError) as exc:
        raise TrainStateError(f"{path}: not a readable safetensors warm-start state ({exc})") from None
    if raw is None:
        raise TrainStateError(f"{path}: not a SteerGAN warm-start state (no 'steergan_warm' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TrainStateError(f"{path}: corrupt warm-start metadata ({exc})") from None
    if meta.get("format") != WARM_FORMAT or not isinstance(meta.get("version"), int) or meta["version"] > WARM_VERSION:
        raise TrainStateError(f"{path}: unsupported warm-start format {meta.get('format')} v{meta.get('version')}")
    modules: dict[str, dict[str, torch.Tensor]] = {name: {} for name in WARM_MODULES}
    for key, value in tensors.items():
        head, _, rest = key.partition("/")
        if head not in modules:
            raise TrainStateError(f"{path}: unexpected tensor {key!r}")
        if value.is_floating_point():
            if not torch.isfinite(value).all():
                raise TrainStateError(f"{path}: tensor {key!r} holds non-finite values")
            value = value.float()
        modules[head][rest] = value
    missing = [name for name in WARM_MODULES if not modules[name]]
    if missing:
        raise TrainStateError(f"{path}: the warm-start state has no weights for {missing}")
    return modules, meta["info"]
