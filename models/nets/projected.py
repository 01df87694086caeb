"""A discriminator that starts out knowing the world (issue 23): Projected GAN on in-domain
features.

Projected GAN (Sauer et al. 2021) puts small trainable heads on the frozen features of a
pretrained network, mixed across channels and scales by fixed random convolutions (CCM,
CSM), and trains them with the hinge loss and no R1. No ImageNet weights can be had here,
so the frozen network is `FeatureBackbone`: an encoder trained once to segment the
procedural data (models/training/train_backbone.py, shipped as
checkpoints/d_backbone.safetensors).

It is deliberately not the metrics probe (models/metrics/probe.py): a D built on the
judge's features lowers the judge's score without better pictures (Kynkäänniemi et al.
2023). The probe is a GroupNorm/SiLU U-Net at full resolution; this is a strided
BatchNorm/LeakyReLU residual encoder, trained from another seed on another loss weighting.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from models.nets.discriminator import group_std, minibatch_std

BACKBONE_SIZE = 64  # the backbone sees every image at this size
BACKBONE_CHANNELS = (32, 64, 96, 128)  # features at 32, 16, 8 and 4 px
MIXED_CHANNELS = (32, 64, 96, 128)  # after the random cross-channel mixing
HEAD_LOGITS_SIZE = 4  # each head ends in a map of patch logits this size (or its input's, if smaller)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.LeakyReLU(0.2),
                                  nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.2)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.2), _Residual(cout))


class FeatureBackbone(nn.Module):
    """Strided residual encoder: features at 1/2, 1/4, 1/8, 1/16 of 64 px. `seg_head` is used
    only while the backbone is trained (class logits at 16 px, upsampled)."""

    def __init__(self, classes: list[str]):
        super().__init__()
        self.classes = list(classes)
        c = BACKBONE_CHANNELS
        self.stages = nn.ModuleList([_down(3, c[0]), _down(c[0], c[1]), _down(c[1], c[2]), _down(c[2], c[3])])
        self.lateral = nn.ModuleList([nn.Conv2d(ch, 32, 1) for ch in c])
        self.seg_head = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.LeakyReLU(0.2),
                                      nn.Conv2d(32, len(classes), 1))

    @staticmethod
    def prepare(images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != BACKBONE_SIZE:
            images = F.interpolate(images, size=(BACKBONE_SIZE, BACKBONE_SIZE), mode="bilinear",
                                   align_corners=False, antialias=images.shape[-1] > BACKBONE_SIZE)
        return images

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.prepare(images)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits at 64 px (training the backbone; tests)."""
        feats = self.features(images)
        y = sum(F.interpolate(lat(f), size=feats[0].shape[-2:], mode="bilinear", align_corners=False)
                for lat, f in zip(self.lateral, feats))
        assert isinstance(y, torch.Tensor)  # four scales: never the empty sum
        return F.interpolate(self.seg_head(y), scale_factor=2, mode="bilinear", align_corners=False)


def backbone_digest(backbone: FeatureBackbone) -> torch.Tensor:
    """The first 8 bytes of the SHA-256 of the backbone's weights, as an int64 tensor."""
    import hashlib

    h = hashlib.sha256()
    for key, value in sorted(backbone.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return torch.tensor([int.from_bytes(h.digest()[:8], "little", signed=True)], dtype=torch.int64)


def _fixed_conv(cin: int, cout: int, generator: torch.Generator) -> torch.Tensor:
    """A random 1x1 convolution's weight (Kaiming normal), never trained."""
    return torch.randn(cout, cin, 1, 1, generator=generator) * (2.0 / cin) ** 0.5


def colour_variety(rgb: torch.Tensor, group: int = 4) -> torch.Tensor:
    """[B, 3, h, w] -> [B, 3, h, w]: at every place, how much each colour channel differs
    across the images of a group (StyleGAN's minibatch std, kept per place and channel, on the
    pixels rather than on features): a batch whose walls all share one grey reads near 0
    where real rooms' walls read high. Groups as minibatch_std's: image i with i + B/g..."""
    spread = group_std(rgb, group)
    return spread.repeat(rgb.shape[0] // spread.shape[0], 1, 1, 1)


class _MinibatchStd(nn.Module):
    """StyleGAN's minibatch-std channel (groups of 4): how much the samples of a group differ."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return minibatch_std(x, 4)


# The first convolutions that take the finest scale's pixels (the heads' and the segmenting
# head's), by their parametrized state keys: what grow_detail_inputs widens.
DETAIL_INPUT_WEIGHTS = ("heads.0.net.0.parametrizations.weight", "segment_head.net.0.parametrizations.weight")


def grow_detail_inputs(state: dict[str, torch.Tensor], factor: int,
                       features: int = MIXED_CHANNELS[0]) -> dict[str, torch.Tensor]:
    """A D state saved without rgb_detail, made to fit a D with it (a comparison arm warm-
    started from the relay's state, session 18). Where the finest head and the segmenting head
    took each colour's 2x2 average, they now take its factor**2 sub-pixels (space-to-depth,
    channel c * factor**2 + k): each gets the old weight / factor**2, so the grown D computes
    on every image what the old one did, up to spectral norm's sigma of the wider matrix (the
    colour columns are 3 of 39; tests/test_projected_detail.py bounds the change). What it
    learns from there is what the detail shows. Returns a new dict; other keys as they were."""
    n = factor * factor
    out = dict(state)
    for prefix in DETAIL_INPUT_WEIGHTS:
        key = f"{prefix}.original"
        if key not in state:
            continue
        w = state[key]  # [out, features + 3 + rest, k, k]
        spread = w[:, features:features + 3].repeat_interleave(n, dim=1) / n
        out[key] = torch.cat([w[:, :features], spread, w[:, features + 3:]], dim=1)
        # spectral norm's power-iteration vector over the flattened inputs: the same spread,
        # scaled to keep its length
        v = state[f"{prefix}.0._v"].view(w.shape[1], -1)
        grown = v[features:features + 3].repeat_interleave(n, dim=0) / factor
        out[f"{prefix}.0._v"] = torch.cat([v[:features], grown, v[features + 3:]]).flatten()
    return out


class _Head(nn.Module):
    """A small patch discriminator on one scale: a 1x1 convolution to 64 channels, stride-2
    convolutions down to 4 px (spectral norm, as Projected GAN's heads), then 1-channel patch
    logits. 64 channels keep D's training state small (issue 24: at most 6 MiB a state).
    With `mbstd` the last convolution also sees the minibatch-std channel: a patch logit can
    then tell a batch whose walls all share one grey from real rooms' varied ones, which no
    per-image judgement can (the colour collapse of the relay's second run, README)."""

    def __init__(self, cin: int, size: int, width: int = 64, mbstd: bool = False):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(cin, width, 1)), nn.LeakyReLU(0.2)]
        while size > HEAD_LOGITS_SIZE:
            layers += [spectral_norm(nn.Conv2d(width, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            size //= 2
        if mbstd:  # a module without weights: the other layers' state keys only shift by one
            layers.append(_MinibatchStd())
        layers += [spectral_norm(nn.Conv2d(width + int(mbstd), width, 3, padding=1)), nn.LeakyReLU(0.2),
                   spectral_norm(nn.Conv2d(width, 1, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


class _SegmentHead(nn.Module):
    """OASIS's idea on the projected features (Sushko et al. 2022, boschresearch/OASIS): per-
    pixel logits over the data's classes plus one "fake" class, at the finest mixed scale
    (which carries every coarser one through the cross-scale mixing). It sees the image (the
    pixels beside the features, as the heads do), never the layout: which class is where must
    come from the picture, or G could not be judged by it."""

    def __init__(self, cin: int, classes: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(spectral_norm(nn.Conv2d(cin, width, 3, padding=1)), nn.LeakyReLU(0.2),
                                 spectral_norm(nn.Conv2d(width, width, 3, padding=1)), nn.LeakyReLU(0.2),
                                 spectral_norm(nn.Conv2d(width, classes + 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Judgement(NamedTuple):
    """What `ProjectedDiscriminator.judge` returns: the heads' patch logits [B, N]; with a
    segmenting head, its class logits [B, C+1, 32, 32] (the last is "fake"), the labels given
    [B, 32, 32], moved with the image by the augmentation (-1 where the shift brought in
    padding), and the layout heatmap at the same scale in [0, 1] (a layout-conditional D); with
    a pixel D beside, its logits."""

    logits: torch.Tensor
    classes: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    heat: torch.Tensor | None = None
    pixel: torch.Tensor | None = None  # the pixel D's logits [B, 1] (with one: TrainConfig.d_pixel)


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None, colour: bool = True) -> torch.Tensor:
    """DiffAugment's colour and translation (Zhao et al. 2020), differentiable, per image:
    what keeps a strong frozen-feature D from winning outright (Projected GAN uses it).
    Colour touches the RGB channels only; the shift moves a layout channel with its image."""
    B, C, H, W = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    if colour:
        rgb, rest = x[:, :3], x[:, 3:]
        rgb = rgb + (rand(B, 1, 1, 1) - 0.5)  # brightness
        mean = rgb.mean(dim=1, keepdim=True)
        rgb = (rgb - mean) * (rand(B, 1, 1, 1) * 2) + mean  # saturation
        mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
        rgb = (rgb - mean) * (rand(B, 1, 1, 1) + 0.5) + mean  # contrast
        x = torch.cat([rgb, rest], dim=1)
    shift = max(1, H // 8)
    sx = (rand(B) * (2 * shift + 1)).long() - shift
    sy = (rand(B) * (2 * shift + 1)).long() - shift
    ys = (torch.arange(H, device=dev)[None] + sy[:, None] + 1).clamp(0, H + 1)  # [B, H] rows of the padded image
    xs = (torch.arange(W, device=dev)[None] + sx[:, None] + 1).clamp(0, W + 1)
    padded = F.pad(x, (1, 1, 1, 1))
    rows = padded.gather(2, ys[:, None, :, None].expand(B, C, H, W + 2))
    return rows.gather(3, xs[:, None, None, :].expand(B, C, H, W))


class ProjectedDiscriminator(nn.Module):
    """Frozen backbone -> fixed random cross-channel (CCM) and cross-scale (CSM) mixing ->
    one trainable head per scale. With `in_channels=4` the 4th channel (the layout heatmap of
    a layout-conditional D) goes, resized, beside the features into every head; with
    `rgb_heads` the RGB image does too (the segmenting backbone barely sees colour); with
    `mbstd` every head ends with a minibatch-std channel (a batch's variety); with
    `rgb_variety` every head also gets `colour_variety` of the pixels at its scale. Real and fake
    batches must go through separate calls, as the trainer's do, or the groups mix them.

    Returns patch logits [B, N] (all heads' maps, flattened and joined): the hinge loss
    averages them."""

    def __init__(self, backbone: FeatureBackbone, in_channels: int = 3, augment: bool | str = True, seed: int = 0,
                 rgb_heads: bool = False, mbstd: bool = False, rgb_detail: bool = False, segment_classes: int = 0,
                 rgb_variety: bool = False, pixel: nn.Module | None = None, image_size: int = BACKBONE_SIZE):
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.in_channels = in_channels
        # True or "color,translation": both; "translation": shifts only; False or "none": none.
        self.augment = "color,translation" if augment is True else ("none" if augment is False else augment)
        g = torch.Generator().manual_seed(seed)
        c, m = BACKBONE_CHANNELS, MIXED_CHANNELS
        # Fixed random mixing: buffers, so that they travel with .to() and are saved, never trained.
        for i in range(4):
            self.register_buffer(f"ccm{i}", _fixed_conv(c[i], m[i], g))
        for i in range(3):  # the coarser scale, projected to the finer one's channels, added to it
            self.register_buffer(f"csm{i}", _fixed_conv(m[i + 1], m[i], g))
        self.rgb_heads = rgb_heads
        # rgb_detail: the finest head gets the pixels themselves, 2x2 blocks stacked as channels
        # (space-to-depth), not their averages: a 2-px rainbow stripe averages to a plausible
        # colour, and the segmenting backbone ignores it (the relay's iridescent objects).
        if rgb_detail and not rgb_heads:
            raise ValueError("rgb_detail needs rgb_heads")
        # Above the backbone's 64 px the detail comes from the image at its own size (a 128 px
        # G's finest layer would otherwise be judged only through a 2x2 average): 4x4 blocks,
        # 48 channels, at 128 px. Up to 64 px, from the 64 px image, as it always was.
        self.rgb_detail = rgb_detail
        self.detail_factor = max(image_size, BACKBONE_SIZE) // (BACKBONE_SIZE // 2)
        if rgb_detail and max(image_size, BACKBONE_SIZE) % (BACKBONE_SIZE // 2):
            raise ValueError(f"rgb_detail needs an image size that is a multiple of {BACKBONE_SIZE // 2},"
                             f" got {image_size}")
        cond = in_channels - 3 + (3 if rgb_heads else 0)
        sizes = [BACKBONE_SIZE // 2 ** (i + 1) for i in range(4)]
        detail = 3 * self.detail_factor ** 2  # RGB channels of the finest head with rgb_detail
        extra = [detail - 3 if rgb_detail and i == 0 else 0 for i in range(4)]
        self.rgb_variety = rgb_variety
        if rgb_variety:  # mbstd (one number for all features) did not keep the walls' colours varied
            extra = [e + 3 for e in extra]
        self.heads = nn.ModuleList([_Head(m[i] + cond + extra[i], sizes[i], mbstd=mbstd) for i in range(4)])
        # segment_classes > 0: OASIS's per-pixel head beside them (TrainConfig.d_segment)
        pixels = (detail if rgb_detail else 3) if rgb_heads else 0
        self.segment_head = _SegmentHead(m[0] + pixels, segment_classes) if segment_classes else None
        # A D on the pixels beside the frozen features (TrainConfig.d_pixel): it sees the whole
        # image and the batch's variety (StyleGAN2's D keeps wall colours varied where every
        # projected variant let them collapse to one grey). Trained, saved, as the heads are.
        self.pixel = pixel
        self.aug_rng: torch.Generator | None = None  # the trainer's stream, so that a seed fixes a run
        # Which backbone the heads were trained on: saved states hold this, not the backbone's
        # weights (shipped once in checkpoints/), and refuse to load onto another backbone.
        self.backbone_digest: torch.Tensor
        self.register_buffer("backbone_digest", backbone_digest(backbone))

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        """Everything but the frozen backbone (its digest stands for it): training states stay
        small (issue 24: at most 6 MiB)."""
        out = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        for key in [k for k in out if k.startswith(prefix + "backbone.")]:
            del out[key]
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        digest = state_dict.get("backbone_digest")
        if digest is not None and not torch.equal(digest.to(self.backbone_digest), self.backbone_digest):
            raise RuntimeError("these discriminator heads were trained on another backbone than the one loaded"
                               " (backbone_digest differs)")
        full = dict(state_dict)
        full.update({f"backbone.{k}": v for k, v in self.backbone.state_dict().items()})
        if self.pixel is not None and not any(k.startswith("pixel.") for k in state_dict):
            # heads trained before the pixel D was added continue with a fresh one
            full.update({f"pixel.{k}": v for k, v in self.pixel.state_dict().items()})
        return super().load_state_dict(full, strict=strict, assign=assign)

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: its BatchNorm statistics never move
        return self

    def requires_grad_(self, requires_grad: bool = True):
        """The trainer freezes D for G's step and thaws it after: only the heads ever thaw."""
        self.heads.requires_grad_(requires_grad)
        for part in (self.segment_head, self.pixel):
            if part is not None:
                part.requires_grad_(requires_grad)
        return self

    def project(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The mixed multi-scale features of the RGB channels (differentiable in x)."""
        feats = self.backbone.features(x[:, :3])
        mixed = [F.conv2d(f, getattr(self, f"ccm{i}")) for i, f in enumerate(feats)]
        for i in (2, 1, 0):  # top-down: each scale gets the coarser (already mixed) one
            up = F.interpolate(F.conv2d(mixed[i + 1], getattr(self, f"csm{i}")), size=mixed[i].shape[-2:],
                               mode="bilinear", align_corners=False)
            mixed[i] = mixed[i] + up
        return mixed

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.judge(img).logits

    def judge(self, img: torch.Tensor, labels: torch.Tensor | None = None) -> Judgement:
        """The heads' patch logits and, with a segmenting head, its per-pixel class logits.
        `labels` [B, H, W] (class indices, or anything for fake images) are shifted with
        the image by the augmentation, so that each pixel keeps its label."""
        if labels is not None:  # stored +1 so that the shift's zero padding reads as -1: ignored
            img = torch.cat([img, labels[:, None].to(img.dtype) + 1], dim=1)
        if self.augment != "none" and self.training:
            img = diff_augment(img, self.aug_rng, colour=self.augment.startswith("color"))
        if labels is not None:
            img, labels = img[:, :-1], img[:, -1:]
        pixel = self.pixel(img) if self.pixel is not None else None  # at the image's own size
        native = img[:, :3]
        if img.shape[-1] != BACKBONE_SIZE:
            img = F.interpolate(img, size=(BACKBONE_SIZE, BACKBONE_SIZE), mode="bilinear", align_corners=False,
                                antialias=img.shape[-1] > BACKBONE_SIZE)
        mixed = self.project(img)
        # The pixels and the layout at each head's scale, once: the heads, the variety channels
        # and the segmenting head all read them. A head's input: features, its pixels (the
        # finest: space-to-depth with rgb_detail), the layout, the colour spread (saved heads
        # depend on this order).
        area = [F.interpolate(img[:, :3], size=f.shape[-2:], mode="area") for f in mixed]
        layout = [F.interpolate(img[:, 3:], size=f.shape[-2:], mode="area") for f in mixed]
        rgb = list(area)
        if self.rgb_detail:
            source = native if native.shape[-1] > BACKBONE_SIZE else img[:, :3]
            if source.shape[-1] != self.detail_factor * mixed[0].shape[-1]:
                raise ValueError(f"this D's detail head was built for {self.detail_factor * mixed[0].shape[-1]} px"
                                 f" images, got {native.shape[-1]} px")
            rgb[0] = F.pixel_unshuffle(source, self.detail_factor)
        logits = []
        for i, (head, f) in enumerate(zip(self.heads, mixed)):
            parts = [f, rgb[i]] if self.rgb_heads else [f]
            parts.append(layout[i])  # 0 channels without a layout
            if self.rgb_variety:
                parts.append(colour_variety(area[i]))
            logits.append(head(torch.cat(parts, dim=1)))
        out = Judgement(torch.cat(logits, dim=1), pixel=pixel)
        if self.segment_head is None:
            return out
        f = torch.cat([mixed[0], rgb[0]], dim=1) if self.rgb_heads else mixed[0]
        size = f.shape[-2:]
        lab = None
        if labels is not None:  # nearest: a label is never an average of two classes
            lab = (F.interpolate(labels, size=size, mode="nearest")[:, 0].round().long() - 1).clamp_min(-1)
        heat = (layout[0][:, :1] + 1) / 2 if self.in_channels > 3 else None
        return out._replace(classes=self.segment_head(f), labels=lab, heat=heat)
