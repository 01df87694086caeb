"""Fit files (issue 26): what fitting a picture adds to a scene, beside its seeds.

A scene stays small and JSON; a fitted one names this file by its SHA-256 (SceneState.fit),
so reopening the scene reproduces the picture exactly and a changed file is noticed. The
file holds the fitted styles (w vectors; each stands for the seed the fit gave its object
or block: models/render.py uses it only while the scene still has that seed), the
checkpoint they were fitted with (its SHA-256), and, after pivotal tuning, the tuned
synthesis weights (fp16, about 1.3 MiB for rooms-cpu).

Files are content-addressed, NAME = <sha256>.fit.safetensors, kept beside the scene or
session that uses them and in the user's fit store (fit_store()).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.document.fileio import (
    FileError,
    FileProblem,
    atomic_write_bytes,
    file_sha256,
    open_regular,
    stream_sha256,
)
from models.io.safetensors_io import SafetensorsProblem, read_header, read_tensor, tagged_metadata

FIT_FORMAT = "steergan-fit"
FIT_VERSION = 1
META_KEY = "steergan_fit"
SUFFIX = ".fit.safetensors"
MAX_FIT_BYTES = 64 << 20
STYLE_KEYS = ("w_global", "w_objects", "w_blocks")
SEED_KEYS = ("seed_global", "seed_objects", "seed_blocks")
WEIGHT_PREFIX = "weights."


class FitFileError(FileError):
    """A fit file cannot be used (the message names it)."""


@dataclass
class FitData:
    checkpoint_sha256: str  # the generator the styles were fitted with
    styles: dict[str, torch.Tensor]  # STYLE_KEYS present: [w], [n, w], [g*g, w] float32
    seeds: dict[str, torch.Tensor]  # SEED_KEYS for the styles present: int64 [1], [n], [g*g]
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # tuned synthesis weights (fp16)
    info: dict[str, Any] = field(default_factory=dict)  # how it was made: picture, steps, seconds, PSNR
    sha256: str = ""  # set when saved or loaded

    @property
    def tuned(self) -> bool:
        return bool(self.weights)


def fit_store() -> Path:
    """The user's fit files (STEERGAN_FITS overrides): the studio writes every fit here."""
    env = os.environ.get("STEERGAN_FITS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "steergan" / "fits"


def fit_name(sha256: str) -> str:
    return sha256 + SUFFIX


def encode_fit(fit: FitData) -> tuple[bytes, str]:
    """(the file's bytes, their SHA-256)."""
    import hashlib

    from safetensors.torch import save

    tensors = {k: v.detach().cpu().float().contiguous() for k, v in fit.styles.items()}
    tensors.update({k: v.detach().cpu().to(torch.int64).contiguous() for k, v in fit.seeds.items()})
    tensors.update({WEIGHT_PREFIX + k: v.detach().cpu().half().contiguous() for k, v in fit.weights.items()})
    meta = {"format": FIT_FORMAT, "version": FIT_VERSION, "checkpoint_sha256": fit.checkpoint_sha256,
            "info": fit.info}
    data = save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return data, hashlib.sha256(data).hexdigest()


def save_fit(fit: FitData, folder: str | os.PathLike) -> Path:
    """Write `fit` into `folder` as <sha256>.fit.safetensors (atomically; an existing file of
    that name already holds these bytes). Sets fit.sha256. FileError if it cannot be written."""
    data, sha = encode_fit(fit)
    fit.sha256 = sha
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FitFileError(folder, f"cannot be created for fit files: {exc.strerror or exc}") from None
    path = folder / fit_name(sha)
    try:  # named by its hash: a file there with these bytes stays; a damaged one is rewritten
        same = path.is_file() and path.stat().st_size == len(data) and file_sha256(path) == sha
    except OSError:
        same = False
    if not same:
        atomic_write_bytes(path, data)
    return path


def load_fit(path: str | os.PathLike, expect_sha256: str | None = None) -> FitData:
    """Read a fit file; FitFileError naming it for anything wrong (not ours, damaged, not the
    file the scene names)."""
    try:
        f = open_regular(path)
    except FileProblem as exc:
        raise FitFileError(path, exc.problem) from None
    with f:
        try:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FIT_BYTES:
                raise FitFileError(path, f"is {size} bytes; a fit file is at most {MAX_FIT_BYTES}")
            sha = stream_sha256(f)
            if expect_sha256 is not None and sha != expect_sha256:
                raise FitFileError(path, "is not the fit file the scene names (its SHA-256 differs: changed or"
                                         " damaged)")
            header = read_header(f)
            meta = tagged_metadata(header, META_KEY, FIT_FORMAT, FIT_VERSION, "fit file")
            ck = meta.get("checkpoint_sha256")
            if not (isinstance(ck, str) and len(ck) == 64):
                raise FitFileError(path, "does not name the checkpoint it was fitted with")
            known = set(STYLE_KEYS) | set(SEED_KEYS)
            for name in header.tensors:
                if name not in known and not name.startswith(WEIGHT_PREFIX):
                    raise FitFileError(path, f"has an unknown tensor {name[:60]!r}")
            tensors = {name: read_tensor(f, header, name) for name in header.tensors}
        except SafetensorsProblem as exc:
            raise FitFileError(path, str(exc)) from None
        except OSError as exc:
            raise FitFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    styles = {k: tensors[k] for k in STYLE_KEYS if k in tensors}
    seeds = {k: tensors[k] for k in SEED_KEYS if k in tensors}
    for style, seed in zip(STYLE_KEYS, SEED_KEYS):
        if (style in styles) != (seed in seeds):
            raise FitFileError(path, f"has {style} without {seed} or the other way round")
        if style in styles:
            w, s = styles[style], seeds[seed]
            if w.dtype != torch.float32 or s.dtype != torch.int64 or w.dim() != (1 if style == "w_global" else 2):
                raise FitFileError(path, f"{style}/{seed} have the wrong type or shape")
            if s.numel() != (1 if style == "w_global" else w.shape[0]):
                raise FitFileError(path, f"{seed} does not hold one seed per style in {style}")
    for name, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value.float()).all():
            raise FitFileError(path, f"tensor {name!r} holds NaN or infinite values")
    raw_info = meta.get("info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    weights = {k[len(WEIGHT_PREFIX):]: v for k, v in tensors.items() if k.startswith(WEIGHT_PREFIX)}
    return FitData(ck, styles, seeds, weights, info, sha)


def _fit_folders(near: str | os.PathLike | None) -> list[Path]:
    """Where a scene's fit file is looked for, in order: beside `near`, then the fit store."""
    return ([Path(near).parent] if near is not None else []) + [fit_store()]


def fit_candidates(sha256: str, near: str | os.PathLike | None = None) -> list[Path]:
    """The files named for this fit that exist, in the order they are tried: beside `near`
    (a scene or session file), then in the fit store."""
    return [path for path in (folder / fit_name(sha256) for folder in _fit_folders(near)) if path.is_file()]


def find_fit(sha256: str, near: str | os.PathLike | None = None) -> Path | None:
    """Where the fit file a scene names is: beside `near` (a scene or session file), else in
    the fit store. None if in neither."""
    found = fit_candidates(sha256, near)
    return found[0] if found else None


def check_fits_generator(fit: FitData, generator, checkpoint_sha256: str | None, where: str = "") -> None:
    """FitFileError unless `fit` was made for this checkpoint and its shapes fit the generator."""
    label = where or fit_name(fit.sha256)
    if checkpoint_sha256 is not None and fit.checkpoint_sha256 != checkpoint_sha256:
        raise FitFileError(label, "was fitted with another checkpoint than the one open")
    cfg = generator.config
    w = cfg.w_dim
    want = {"w_global": (w,), "w_objects": (cfg.objects, w), "w_blocks": (cfg.grid ** 2, w)}
    for key, value in fit.styles.items():
        if tuple(value.shape) != want[key] or (key != "w_global" and want[key][0] == 0):
            raise FitFileError(label, f"{key} is {tuple(value.shape)}; the generator needs {want[key]}")
    own = generator.state_dict()
    for key, value in fit.weights.items():
        if key not in own or tuple(own[key].shape) != tuple(value.shape):
            raise FitFileError(label, f"tuned weight {key[:60]!r} does not fit the generator")


def tuned_copy(generator, fit: FitData):
    """A copy of `generator` with the fit's tuned weights (the generator itself when none)."""
    import copy

    if not fit.weights:
        return generator
    tuned = copy.deepcopy(generator)
    with torch.no_grad():
        own = dict(tuned.named_parameters())
        own.update(dict(tuned.named_buffers()))
        for key, value in fit.weights.items():
            own[key].copy_(value.to(own[key].dtype))
    return tuned


def open_fit_for(state, near: str | os.PathLike | None, generator, checkpoint_sha256: str | None):
    """(the generator to render `state` with, its fit or None) for a scene that may name a
    fit file: the file is looked for beside `near` and in the fit store, checked against the
    generator, and its tuned weights applied to a copy. FitFileError naming the file (or,
    when it is nowhere, the name it should have) otherwise."""
    if state.fit is None:
        return generator, None
    first_problem: FitFileError | None = None
    for path in fit_candidates(state.fit, near):
        try:  # a damaged copy beside the session does not hide a good one in the store
            fit = load_fit(path, expect_sha256=state.fit)
        except FitFileError as exc:
            first_problem = first_problem or exc
            continue
        check_fits_generator(fit, generator, checkpoint_sha256, str(path))
        return tuned_copy(generator, fit), fit
    if first_problem is not None:
        raise first_problem
    where = f"beside {near} or in {fit_store()}" if near is not None else f"in {fit_store()}"
    raise FitFileError(fit_name(state.fit), f"the scene's fit file is not {where}")
