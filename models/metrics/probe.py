"""The probe: a small segmenter trained on the procedural data, shipped in checkpoints/.

It plays two parts (DESIGN.md): the analogue of the SpatialGAN paper's Mask R-CNN (it
locates objects, for the co-move ratio) and the fixed feature network of the domain FD
(its pooled encoder features). One network, trained once, never on generated images.
"""
from __future__ import annotations

import json
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from models.document.fileio import atomic_write_bytes
from models.io.bundled import CHECKPOINT_DIR

PROBE_SIZE = 64  # images are resized to this before the probe sees them
PROBE_FORMAT = "steergan-probe"
FIGURE_CLASS_NAME = "figure"


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class Probe(nn.Module):
    """A small U-Net: class logits at 64x64, and 128 pooled features for the FD."""

    def __init__(self, classes: list[str]):
        super().__init__()
        self.classes = list(classes)  # index 0 is the background
        self.enc1, self.enc2, self.enc3, self.enc4 = _block(3, 32), _block(32, 64), _block(64, 96), _block(96, 128)
        self.dec3, self.dec2, self.dec1 = _block(128 + 96, 96), _block(96 + 64, 64), _block(64 + 32, 32)
        self.head = nn.Conv2d(32, len(classes), 1)

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        """Generator images ([-1, 1], any size) -> the probe's input size."""
        if images.shape[-1] != PROBE_SIZE:
            images = F.interpolate(images.float(), size=(PROBE_SIZE, PROBE_SIZE), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images.float()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (class logits [B, K, 64, 64], features [B, 128 + 96])."""
        x1 = self.enc1(self.prepare(images))
        x2 = self.enc2(F.avg_pool2d(x1, 2))
        x3 = self.enc3(F.avg_pool2d(x2, 2))
        x4 = self.enc4(F.avg_pool2d(x3, 2))
        up = lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y3 = self.dec3(torch.cat([up(x4), x3], 1))
        y2 = self.dec2(torch.cat([up(y3), x2], 1))
        y1 = self.dec1(torch.cat([up(y2), x1], 1))
        features = torch.cat([x4.mean(dim=(2, 3)), x3.mean(dim=(2, 3))], dim=1)
        return self.head(y1), features


# ---- files ------------------------------------------------------------------------------

def save_probe(path: str | os.PathLike, probe: Probe, info: dict) -> None:
    from safetensors.torch import save

    meta = {"format": PROBE_FORMAT, "version": 1, "classes": probe.classes, **info}
    tensors = {k: v.detach().cpu().contiguous() for k, v in probe.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata={"steergan_probe": json.dumps(meta)}))


def load_probe(path: str | os.PathLike) -> tuple[Probe, dict]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("steergan_probe")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: the metrics probe is missing; train it with"
                                " `python -m models.metrics.train_probe`") from None
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable probe file ({exc})") from None
    if raw is None:
        raise ValueError(f"{path}: not a SteerGAN metrics probe")
    for name, t in tensors.items():  # a NaN probe measures NaN FDs and finds no object
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{path}: not a usable SteerGAN metrics probe (tensor {name!r} holds non-finite values)")
    try:
        meta = json.loads(raw)
        classes = meta.get("classes") if isinstance(meta, dict) else None
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
            raise ValueError("its description has no list of class names")
        probe = Probe(classes)
        probe.load_state_dict(tensors)  # RuntimeError when names or shapes differ
    except (ValueError, TypeError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__  # load_state_dict's is many lines
        raise ValueError(f"{path}: not a usable SteerGAN metrics probe ({detail})") from None
    return probe.eval().requires_grad_(False), meta


# ---- training on the procedural data ------------------------------------------------------

def probe_classes() -> list[str]:
    from models.data.rooms import KINDS

    return ["background", *KINDS, FIGURE_CLASS_NAME]


def label_maps(batch, figure: bool, classes: list[str]) -> torch.Tensor:
    """Ground-truth class per pixel [B, S, S] from a SceneBatch (masks already occlusion-aware)."""
    masks = batch.masks  # [B, n, S, S]
    labels = torch.zeros(masks.shape[0], *masks.shape[-2:], dtype=torch.long, device=masks.device)
    for i in range(masks.shape[1]):
        on = masks[:, i] > 0.5
        cls = torch.full_like(labels, classes.index(FIGURE_CLASS_NAME)) if figure else \
            (batch.kinds[:, i].clamp_min(0) + 1).view(-1, 1, 1).expand_as(labels)
        labels = torch.where(on, cls, labels)
    return labels


def train_probe(minutes: float, batch: int = 32, seed: int = 0, log=print) -> tuple[Probe, dict]:
    """Train on rooms and figures (half a batch each) for `minutes`; CPU is enough."""
    from models.data import make_dataset

    classes = probe_classes()
    torch.manual_seed(seed)
    probe = Probe(classes)
    opt = torch.optim.Adam(probe.parameters(), lr=2e-3)
    rng = torch.Generator().manual_seed(seed)
    rooms, figures = make_dataset("rooms", 128, "cpu"), make_dataset("figures", 128, "cpu")
    start, step = time.time(), 0
    while time.time() - start < minutes * 60:
        losses = []
        for data, is_fig in ((rooms, False), (figures, True)):
            b = data.sample(batch // 2, rng)
            target = label_maps(b, is_fig, classes)
            target = F.interpolate(target[:, None].float(), size=(PROBE_SIZE, PROBE_SIZE), mode="nearest")[:, 0].long()
            logits, _ = probe(b.images)
            losses.append(F.cross_entropy(logits, target))
        loss = sum(losses)
        assert isinstance(loss, torch.Tensor)  # two data sets: never the empty sum 0
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 25 == 0:
            log(f"probe step {step}: loss {float(loss):.4f} ({time.time() - start:.0f} s)")
    return probe.eval().requires_grad_(False), {"steps": step, "batch": batch, "minutes": minutes,
                                                 "final_loss": float(loss)}


DEFAULT_PROBE = CHECKPOINT_DIR / "probe.safetensors"
