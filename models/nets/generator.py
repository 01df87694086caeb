"""The steerable generator: StyleGAN2-style mapping + synthesis with skip outputs, whose
config switches on the capabilities of the four papers.

The spatially varying style is one idea throughout (DESIGN.md): per-object styles weighted
by their heatmaps plus a background style field from the block grid,

    w_field(x, y) = sum_i w_i * H_i(x, y) + w_bg(x, y)        (SEL_indoor, SSN)

fed to spatially modulated convolutions. Without objects or a grid the field is a single
w, the plain StyleGAN2 case. The hierarchical (single-object) setting adds SEL_norm
blocks that inject the 4/8/16 heatmaps into the features. The time capability (video,
models/nets/motion.py) concatenates time features to the constant input, as StyleGAN-V does:
content (styles, grid, heatmaps) is fixed over time and only the motion input varies.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from models.config import HIERARCHY_LEVELS, GeneratorConfig
from models.document.scene import DEFAULT_OBJECT_SIGMA, DEFAULT_ROOT_SIGMA
from models.nets.heatmaps import (
    bone_heatmaps,
    gaussian_heatmaps,
    hierarchy_heatmaps,
    sample_hierarchy,
    sample_object_centers,
)
from models.nets.layers import EqualConv2d, MappingNetwork, StyledConv, ToRGB, bilinear_resize, check_noise_mode
from models.nets.motion import MotionEncoder, random_motion
from models.nets.palette import ObjectPalette
from models.nets.sprites import ObjectSprites


@dataclass
class Latents:
    """Everything random that goes into one batch of images, as tensors."""

    z_global: torch.Tensor  # [B, z]: the style when there are no blocks; the figure's style
    z_objects: torch.Tensor | None = None  # [B, n, z]
    centers: torch.Tensor | None = None  # [B, n, 2] (x, y) in [0, 1]
    sigmas: torch.Tensor | None = None  # [B, n]; 0 removes the object
    z_blocks: torch.Tensor | None = None  # [B, g*g, z], row-major blocks
    root: torch.Tensor | None = None  # [B, 2] level-0 center (hierarchical)
    offsets1: torch.Tensor | None = None  # [B, 2, 2] level-1 centers relative to the root
    offsets2: torch.Tensor | None = None  # [B, 4, 2] level-2 centers relative to their parent
    root_sigma: torch.Tensor | None = None  # [B]
    motion_codes: torch.Tensor | None = None  # [B, K + 1, m] grid codes around each frame's time
    motion_alpha: torch.Tensor | None = None  # [B] where the time lies between its grid points
    # Fitted styles (models/fit: a picture the user brought): w vectors used instead of the
    # mapped z where the mask is true (an element the user restyled since has its mask off).
    w_global: torch.Tensor | None = None  # [B, w]
    w_global_on: torch.Tensor | None = None  # [B] bool
    w_objects: torch.Tensor | None = None  # [B, n, w]
    w_objects_on: torch.Tensor | None = None  # [B, n] bool
    w_blocks: torch.Tensor | None = None  # [B, g*g, w]
    w_blocks_on: torch.Tensor | None = None  # [B, g*g] bool
    # Each object's kind, an index into GeneratorConfig.object_kinds; -1 (or no tensor): not said.
    kinds: torch.Tensor | None = None  # [B, n] long

    @property
    def batch(self) -> int:
        return self.z_global.shape[0]

    def need(self, name: str) -> torch.Tensor:
        """The field `name`, which this generator's capabilities require."""
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"these latents have no {name}: the generator's capabilities need it")
        return value

    def to(self, device: torch.device | str) -> Latents:
        return replace(self, **{f.name: getattr(self, f.name).to(device)
                                for f in fields(self) if getattr(self, f.name) is not None})

    def repeat_each(self, times: int) -> Latents:
        """Each element `times` times in a row (one copy per frame of a clip)."""
        return replace(self, **{f.name: getattr(self, f.name).repeat_interleave(times, dim=0)
                                for f in fields(self) if getattr(self, f.name) is not None})

    def rows(self, start: int, stop: int) -> Latents:
        """Elements start..stop-1 (views, no copy)."""
        return replace(self, **{f.name: getattr(self, f.name)[start:stop]
                                for f in fields(self) if getattr(self, f.name) is not None})


class SELNorm(nn.Module):
    """Hierarchical heatmap encoding: x + norm(x) * gamma(h) + beta(h), with h computed from
    this level's heatmap and the coarser level's processed heatmap. gamma, beta start at
    zero, so the block starts as the identity (the residual)."""

    def __init__(self, channels: int, hidden: int, has_coarser: bool):
        super().__init__()
        self.process = EqualConv2d(1 + (hidden if has_coarser else 0), hidden, 3)
        self.gamma = nn.Conv2d(hidden, channels, 1)
        self.beta = nn.Conv2d(hidden, channels, 1)
        for conv in (self.gamma, self.beta):
            assert conv.bias is not None  # nn.Conv2d's default: with a bias
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, heatmap: torch.Tensor, coarser: torch.Tensor | None):
        inp = heatmap if coarser is None else torch.cat(
            [heatmap, bilinear_resize(coarser, heatmap.shape[-1])], dim=1)
        h = self.process(inp)
        normed = F.instance_norm(x)
        return x + normed * self.gamma(h) + self.beta(h), h

    def extra_repr(self) -> str:
        has_coarser = self.process.weight.shape[1] > 1  # its input: this heatmap (+ the coarser features)
        return f"channels={self.gamma.out_channels}, hidden={self.gamma.in_channels}, has_coarser={has_coarser}"


class Generator(nn.Module):
    motion: MotionEncoder  # only with the time capability

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.mapping = MappingNetwork(config.z_dim, config.w_dim, config.mapping_layers)
        self.const = nn.Parameter(torch.randn(1, c[4], 4, 4))
        self.convs = nn.ModuleDict()
        self.torgbs = nn.ModuleDict()
        layer = 0
        # With time, the 4x4 conv also reads the time features concatenated to the constant;
        # without it, every parameter is exactly what it was before video existed.
        time_channels = config.time["channels"] if config.time is not None else 0
        for r in config.resolutions():
            cin = c[4] if r == 4 else c[r // 2]
            blocks = [] if r == 4 else [StyledConv(cin, c[r], config.w_dim, r, upsample=True,
                                                   mtm=r in config.mtm, noise=config.noise, noise_seed=layer,
                                                   name=f"{r}.0")]
            layer += len(blocks)
            own_in = c[r] + (time_channels if r == 4 else 0)
            blocks.append(StyledConv(own_in, c[r], config.w_dim, r, mtm=r in config.mtm,
                                     noise=config.noise, noise_seed=layer, name=f"{r}.{len(blocks)}"))
            layer += 1
            self.convs[str(r)] = nn.ModuleList(blocks)
            self.torgbs[str(r)] = ToRGB(c[r], config.w_dim)
        if config.objects:
            # Where the objects are, as a learned per-channel bias times the summed heatmap:
            # the style field says what an object looks like, this says that one is there.
            # (One per resolution even below objects_from, unused there: the weights stay
            # those of the same config with objects from 4 px, so either warm-starts the other.)
            self.heat_bias = nn.ParameterDict({str(r): nn.Parameter(torch.zeros(c[r]))
                                               for r in config.resolutions()})
        if config.object_sprites:
            # Each object's own features, drawn in its coordinates (nets/sprites.py), at the
            # resolutions where objects enter.
            self.sprites = nn.ModuleDict({str(r): ObjectSprites(config.w_dim, c[r], config.object_sprites)
                                          for r in config.resolutions() if r >= config.objects_from})
        if config.bones_from:
            # Where the limbs are, as a learned per-channel bias times the bone map (zero at
            # first: a figures-cpu state starts figures-cpu-bones unchanged).
            self.bone_bias = nn.ParameterDict({str(r): nn.Parameter(torch.zeros(c[r]))
                                               for r in config.resolutions() if r >= config.bones_from})
        if config.hierarchical:
            self.sel = nn.ModuleDict({str(r): SELNorm(c[r], 16, has_coarser=i > 0)
                                      for i, r in enumerate(HIERARCHY_LEVELS)})
        if config.time is not None:
            self.motion = MotionEncoder(config)
        if config.object_palette:
            # Made last: the random weights drawn before it are those of the same config without.
            self.palette = ObjectPalette(config.w_dim, c[config.resolution], config.object_palette)
        if config.object_kinds:
            # One vector per kind added to the object's style (config.object_kinds); zero at first,
            # so a state without kinds starts drawing what it drew. Made after everything else:
            # the random weights drawn before it are those of the same config without kinds.
            self.kind_vectors = nn.Parameter(torch.zeros(len(config.object_kinds), config.w_dim))

    # ---- latents --------------------------------------------------------------------
    def sample_latents(self, batch: int, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> Latents:
        """Random latents distributed as in training (SpatialGAN heatmap sampling)."""
        cfg = self.config
        lat = Latents(z_global=torch.randn(batch, cfg.z_dim, generator=generator))
        if cfg.objects:
            lat.z_objects = torch.randn(batch, cfg.objects, cfg.z_dim, generator=generator)
            lat.centers = sample_object_centers(batch, cfg.objects, generator)
            lat.sigmas = torch.full((batch, cfg.objects), DEFAULT_OBJECT_SIGMA)
        if cfg.grid:
            lat.z_blocks = torch.randn(batch, cfg.grid * cfg.grid, cfg.z_dim, generator=generator)
        if cfg.hierarchical:
            lat.root, lat.offsets1, lat.offsets2 = sample_hierarchy(batch, generator, layout_prior=cfg.layout_prior)
            lat.root_sigma = torch.full((batch,), DEFAULT_ROOT_SIGMA)
        if cfg.time is not None:  # drawn last: the draws of generators without time are unchanged
            lat.motion_codes, lat.motion_alpha = random_motion(cfg, batch, generator)
        if cfg.object_kinds:  # after that: the draws of generators without kinds are unchanged
            lat.kinds = torch.randint(len(cfg.object_kinds), (batch, cfg.objects), generator=generator)
        return lat.to(device)

    # ---- the spatial inputs ---------------------------------------------------------
    def object_heatmaps(self, lat: Latents, size: int) -> torch.Tensor:
        """[B, n, size, size] sub-heatmaps (multi-object)."""
        return gaussian_heatmaps(lat.need("centers"), lat.need("sigmas"), size)

    def bone_map(self, lat: Latents, size: int) -> torch.Tensor:
        """[B, 1, size, size]: the skeleton's bones (hierarchical, GeneratorConfig.bones_from)."""
        return bone_heatmaps(lat.need("root"), lat.need("offsets1"), lat.need("offsets2"), lat.need("root_sigma"),
                             size)

    def level_heatmaps(self, lat: Latents) -> list[torch.Tensor]:
        """[B, 1, r, r] at r = 4, 8, 16 (hierarchical)."""
        return hierarchy_heatmaps(lat.need("root"), lat.need("offsets1"), lat.need("offsets2"), lat.need("root_sigma"))

    def _styles(self, z: torch.Tensor, fitted: torch.Tensor | None, on: torch.Tensor | None,
                psi: float | torch.Tensor) -> torch.Tensor:
        w = self.mapping(z)
        if fitted is not None and on is not None:  # truncation treats fitted and drawn styles alike
            w = torch.where(on[..., None], fitted.to(w.dtype), w)
        return self.mapping.truncate(w, psi)

    def object_places(self, lat: Latents, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The objects' centers [B, n, 2] and sigmas [B, n] as the layers of `size` px see them
        (the same at every size; models/tools/leak_profile.py varies them by size)."""
        return lat.need("centers"), lat.need("sigmas")

    def object_styles(self, lat: Latents, psi: float | torch.Tensor) -> torch.Tensor:
        """[B, n, w]: each object's style (drawn or fitted, truncated), plus its kind's vector
        where the generator is told kinds and the latents say one (after the truncation: the
        kind is what the user asked for, not a draw to be pulled towards the average)."""
        w = self._styles(lat.need("z_objects"), lat.w_objects, lat.w_objects_on, psi)
        if self.config.object_kinds and lat.kinds is not None:
            said = lat.kinds >= 0
            vectors = self.kind_vectors[lat.kinds.clamp(0, len(self.config.object_kinds) - 1)]
            w = w + vectors.to(w.dtype) * said[..., None].to(w.dtype)
        return w

    def _w_fields(self, lat: Latents, psi: float | torch.Tensor,
                  w_obj: torch.Tensor | None = None) -> dict[int, torch.Tensor]:
        """The style field per synthesis resolution, computed at most at style_res. `w_obj`:
        the objects' styles if the caller has them already (forward, for the sprites)."""
        cfg = self.config
        w_global = self._styles(lat.z_global, lat.w_global, lat.w_global_on, psi)
        sizes = sorted({min(r, cfg.style_res) for r in cfg.resolutions()})
        if not cfg.objects and not cfg.grid:
            return {s: w_global for s in sizes}  # a global style: the plain StyleGAN2 case
        B = lat.batch
        if cfg.grid:
            g = cfg.grid
            w_blocks = self._styles(lat.need("z_blocks"), lat.w_blocks, lat.w_blocks_on, psi)  # [B, g*g, w]
            w_grid = w_blocks.transpose(1, 2).reshape(B, cfg.w_dim, g, g)
        if cfg.objects and w_obj is None:
            w_obj = self.object_styles(lat, psi)  # [B, n, w]
        fields_ = {}
        for s in sizes:
            if cfg.grid and s >= cfg.blocks_from:
                bg = bilinear_resize(w_grid, s)
            else:
                bg = w_global[:, :, None, None].expand(B, cfg.w_dim, s, s)
            if cfg.objects and s >= cfg.objects_from:
                heat = self.object_heatmaps(lat, s)  # [B, n, s, s]
                if cfg.objects_own_style:  # the object's style in place of the blocks' (config.py)
                    bg = bg * (1 - heat.sum(dim=1, keepdim=True).clamp(max=1.0))
                bg = bg + torch.einsum("bnw,bnhv->bwhv", w_obj, heat)
            fields_[s] = bg
        return fields_

    # ---- synthesis ------------------------------------------------------------------
    def forward(self, lat: Latents, psi: float | torch.Tensor = 1.0, offset_scale: float | torch.Tensor = 1.0,
                noise_mode: str = "random", stop_at: int | None = None) -> torch.Tensor:
        """Images [B, 3, R, R] in about [-1, 1]. `stop_at`: end the synthesis at that
        resolution and return the skip architecture's RGB image there (a cheap preview:
        each finer block only adds detail to the upsampled coarser image); a preview also
        demodulates with the smooth approximation (layers.StyledConv). The MTM offset
        fields can be read with forward hooks on the layers' `offset_tap` (models/render.py)."""
        check_noise_mode(noise_mode)
        cfg = self.config
        # the objects' styles once: the style field, the sprites and the palettes all read them
        w_objects = self.object_styles(lat, psi) if cfg.object_sprites or cfg.object_palette else None
        w_fields = self._w_fields(lat, psi, w_objects)
        levels = self.level_heatmaps(lat) if cfg.hierarchical else None
        x = self.const.expand(lat.batch, -1, -1, -1)
        if cfg.time is not None:
            x = torch.cat([x, self.time_features(lat)], dim=1)
        rgb, sel_h = None, None
        preview = stop_at is not None and stop_at < cfg.resolution
        for r in cfg.resolutions():
            if stop_at is not None and r > stop_at and rgb is not None:
                break
            w_field = w_fields[min(r, cfg.style_res)]
            for conv in self.convs[str(r)].children():
                x = conv(x, w_field, offset_scale, noise_mode, smooth_demod=preview)
            if cfg.object_sprites and w_objects is not None and r >= cfg.objects_from:
                x = self.sprites[str(r)](x, w_objects, *self.object_places(lat, r))
            if cfg.objects and r >= cfg.objects_from:
                heat = self.object_heatmaps(lat, r).sum(dim=1, keepdim=True)
                x = x + self.heat_bias[str(r)].view(1, -1, 1, 1) * heat
            if levels is not None and r in HIERARCHY_LEVELS:
                x, sel_h = self.sel[str(r)](x, levels[HIERARCHY_LEVELS.index(r)], sel_h)
            if cfg.bones_from and r >= cfg.bones_from:
                x = x + self.bone_bias[str(r)].view(1, -1, 1, 1) * self.bone_map(lat, r).to(x.dtype)
            y = self.torgbs[str(r)](x, w_field)
            rgb = y if rgb is None else bilinear_resize(rgb, rgb.shape[-1] * 2) + y
            if cfg.object_palette and w_objects is not None and r == cfg.resolution:
                rgb = self.palette(rgb, x, w_objects, self.object_heatmaps(lat, r))
        assert rgb is not None  # the 4 px block always runs
        return rgb

    def time_features(self, lat: Latents) -> torch.Tensor:
        """[B, channels, 4, 4]: the motion input, the same at every position of the constant."""
        if lat.motion_codes is None or lat.motion_alpha is None:
            raise ValueError("this generator has the time capability: its latents need motion_codes and"
                             " motion_alpha (render() and sample_latents() provide them)")
        feats = self.motion(lat.motion_codes, lat.motion_alpha)
        return feats[:, :, None, None].expand(-1, -1, 4, 4).to(self.const.dtype)

    @torch.no_grad()
    def update_w_avg(self, num: int = 4096, seed: int = 0) -> None:
        """Estimate the average w (for truncation) from random z."""
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(num, self.config.z_dim, generator=g).to(self.const.device)
        self.mapping.w_avg.copy_(self.mapping(z).mean(dim=0))

