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
