"""The training loop: one process per GPU (torchrun) or a single CPU/GPU process.

Gradients are all-reduced by hand after each backward, as stylegan2-ada does, instead
of wrapping the networks in DistributedDataParallel: R1 and the GradCAM alignment both
take double backward passes, which DDP's hooks do not support.
"""
from __future__ import annotations

import copy
import csv
import datetime
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image

from models.config import architecture
from models.data.batch import SceneBatch, SceneLayout
from models.data.figures import skeleton_hierarchy
from models.document.scene import DEFAULT_OBJECT_SIGMA, DEFAULT_ROOT_SIGMA
from models.io.checkpoint import save_checkpoint
from models.metrics.colour import colour_cells
from models.nets.discriminator import Discriminator
from models.nets.generator import Generator, Latents
from models.nets.heatmaps import bone_distances, gaussian_heatmaps
from models.nets.video_discriminator import ClipsProjectedDiscriminator, VideoDiscriminator
from models.render import to_uint8
from models.synthesis import capture_offsets
from models.training.configs import TrainConfig
from models.training.losses import (
    alignment_loss,
    d_hinge,
    d_logistic,
    d_segment_loss,
    distortion_loss,
    g_hinge,
    g_nonsaturating,
    g_segment_loss,
    intended_kinds,
    limb_segment_loss,
    move_consistency_loss,
    off_line_colour,
    offset_size_penalty,
    patch_weight,
    quantile_gap,
    r1_penalty,
    sliced_colour_loss,
    texture_patches,
)
from models.training.parts import part_segment_loss
from models.training.precision import autocast, resolve_precision, to_channels_last
from models.training.state import load_train_state, save_train_state
from models.training.video_step import video_train_step

if TYPE_CHECKING:
    from models.nets.projected import FeatureBackbone, Judgement, ProjectedDiscriminator

STATE_FILE = "train_state.safetensors"
LOG_FIELDS = ["step", "images", "seconds", "images_per_s", "loss_d", "loss_g", "r1", "align", "distortion", "move"]


class TrainingDiverged(Exception):
    """A loss or a weight became NaN or infinite. Nothing was saved after it: the last good
    state on disk is kept. The message names the step and what went wrong."""


def _world() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike, device: str = "cpu",
                 resume: str | os.PathLike | None = None, log: Callable[[str], None] | None = None,
                 precision: str = "auto"):
        from models.data import make_dataset

        self.cfg = cfg
        self.rank, self.world, local = _world()
        if device.startswith("cuda") and self.world > 1:
            device = f"cuda:{local}"
            torch.cuda.set_device(local)  # else NCCL puts every process's context on GPU 0
        self._owns_group = self.world > 1 and not dist.is_initialized()
        if self._owns_group:
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.device = torch.device(device)
        self.out = Path(out_dir)
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.gen_config = architecture(cfg.architecture)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.G = Generator(self.gen_config).to(self.device)
        self.layout = cfg.condition_d_on_layout
        # A generator with time trains on sparse clips against a video D (video_step.py).
        self.clips = self.gen_config.time is not None
        self.projected = cfg.recipe == "projected"
        self.D = self._build_d().to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.G.update_w_avg()
        self.G_ema.mapping.w_avg.copy_(self.G.mapping.w_avg)
        self.batch = max(1, cfg.batch // self.world)
        # StyleGAN2's lazy-regularisation correction of D's optimiser for R1 every N steps
        # (none for the projected recipe, which has no R1).
        c = 1.0 if self.projected else cfg.r1_every / (cfg.r1_every + 1)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opt_D = torch.optim.Adam([p for p in self.D.parameters() if p.requires_grad], lr=cfg.lr * c,
                                      betas=tuple(b ** c for b in cfg.betas))
        self.data = make_dataset(cfg.dataset, self.gen_config.resolution, self.device,
                                 n_objects=max(1, self.gen_config.objects))
        self.rng = torch.Generator().manual_seed(cfg.seed * 7919 + self.rank)  # latents and data
        if self.projected:
            # D's augmentation draws from the saved stream: resumes exactly
            self._projected_d().aug_rng = self.rng
        self._real_queue: list = []  # rendered real batches not yet used (real_chunk > 1)
        self._colour_bank = self._real_colour_bank() if cfg.colour_match else None
        self._chroma_bank = self._real_chroma_bank() if cfg.chroma_match else None
        self._limb_segmenter: FeatureBackbone | None = None  # limb_segment's judge, and its figure class
        self._figure_class = 0
        if cfg.limb_segment:
            self._limb_segmenter, self._figure_class = self._load_limb_segmenter()
        self._kind_classes = self._kind_class_indices()  # the per-pixel class of each kind G is told
        self.step = 0
        self.images_seen = 0
        self.train_seconds = 0.0
        # A stop signal (on_stop_signal) during run(): "training" ends the loop after the step in
        # progress, "saving" lets the final save finish; "idle" raises KeyboardInterrupt.
        self.stop_requested = False
        self._phase = "idle"
        # bf16 autocast on a GPU and on a CPU with bf16 in hardware (models/training/precision.py)
        self.precision = resolve_precision(precision, self.device)
        self.amp = autocast(self.precision, self.device)
        if self.precision == "bf16" and self.device.type == "cpu":
            # oneDNN's bf16 convolutions want channels-last: 1.13x on top of bf16 (precision.py).
            # G_ema stays as it is (it is copied above): it renders, saves and is measured.
            to_channels_last(self.G, self.D)
        if resume is not None:
            self.load(resume)

    COLOUR_BANK = 2048  # real images whose cell colours G's batches are matched against

    def _real_colour_bank(self) -> torch.Tensor:
        """The cell colours of COLOUR_BANK real images, drawn once from their own seed (the
        data stream is untouched, so a resumed run draws what it would have): 2048 images at
        64 px take about 3 s to render on the CPU."""
        rng = torch.Generator().manual_seed(self.cfg.seed * 7919 + 104729)
        return torch.cat([colour_cells(self.data.sample(256, rng).images)
                          for _ in range(self.COLOUR_BANK // 256)]).to(self.device)

    CHROMA_PATCHES = 32  # patches per real image in the chroma bank (65,536 in all), 128 per fake one

    def _real_chroma_bank(self) -> torch.Tensor:
        """Sorted off-line colour values [M, 1] of real patches at their objects (a figure's
        parts), drawn once from their own seed (the data stream is untouched)."""
        rng = torch.Generator().manual_seed(self.cfg.seed * 7919 + 130363)
        values = []
        for _ in range(self.COLOUR_BANK // 256):
            batch = self.data.sample(256, rng)
            where = patch_weight(self._real_layout(batch), batch.images.shape[-1])
            values.append(off_line_colour(texture_patches(batch.images, self.CHROMA_PATCHES, rng, where)))
        return torch.cat(values)[:, None].sort(dim=0).values.to(self.device)

    def _load_limb_segmenter(self) -> tuple[FeatureBackbone, int]:
        """limb_segment's judge: the projected D's frozen backbone (a segmenter of the procedural
        data; never a metric's network), and the index of its figure class; with limb_parts the
        part segmenter (its class list must be background and data.figures.PARTS; index -1)."""
        from models.data.figures import PARTS
        from models.io.backbone_file import BackboneError, backbone_path, load_backbone, parts_backbone_path
        from models.metrics.probe import FIGURE_CLASS_NAME

        path = parts_backbone_path() if self.cfg.limb_parts else backbone_path()
        segmenter, _ = load_backbone(path)  # BackboneError names the file
        segmenter = segmenter.to(self.device).eval().requires_grad_(False)
        if self.cfg.limb_parts:
            if segmenter.classes != ["background", *PARTS]:
                raise BackboneError(path, f"limb_parts needs a segmenter of the classes {['background', *PARTS]};"
                                          f" it knows {segmenter.classes}")
            return segmenter, -1
        if FIGURE_CLASS_NAME not in segmenter.classes:
            raise BackboneError(path, f"limb_segment needs a backbone that segments the {FIGURE_CLASS_NAME!r}"
                                      f" class; it knows {segmenter.classes}")
        return segmenter, segmenter.classes.index(FIGURE_CLASS_NAME)

    def _kind_class_indices(self) -> torch.Tensor | None:
        """For a generator told its objects' kinds, trained with the per-pixel D: each kind's class
        index among the D's classes; None otherwise (G is then asked for "any object")."""
        kinds = self.gen_config.object_kinds
        if not kinds or not (self.projected and self.cfg.d_segment):
            return None
        unknown = [k for k in kinds if k not in self.classes]
        if unknown:
            raise ValueError(f"architecture {self.cfg.architecture!r} names object kinds {unknown} that the"
                             f" D's classes {self.classes} do not have")
        return torch.tensor([self.classes.index(k) for k in kinds], device=self.device)

    def _build_d(self) -> torch.nn.Module:
        """The discriminator the recipe asks for (TrainConfig.recipe)."""
        in_channels = 4 if self.layout else 3
        if self.projected:
            from models.io.backbone_file import backbone_path, load_backbone
            from models.nets.projected import ProjectedDiscriminator

            backbone, _ = load_backbone(backbone_path())  # BackboneError names the file
            from models.metrics.probe import probe_classes  # the class list only, not the probe

            self.classes = probe_classes()
            # for clips the video D takes the pixel D's place (nets/video_discriminator.py)
            pixel = Discriminator(self.gen_config.resolution, self.gen_config.channels, in_channels=in_channels) \
                if self.cfg.d_pixel and not self.clips else None
            projected = ProjectedDiscriminator(backbone, in_channels=in_channels, seed=self.cfg.seed, pixel=pixel,
                                               augment=self.cfg.d_augment, rgb_heads=self.cfg.d_rgb_heads,
                                               mbstd=self.cfg.d_mbstd, rgb_detail=self.cfg.d_rgb_detail,
                                               segment_classes=len(self.classes) if self.cfg.d_segment else 0,
                                               rgb_variety=self.cfg.d_rgb_variety,
                                               image_size=self.gen_config.resolution)
            if self.clips:
                video = VideoDiscriminator(self.gen_config.resolution, self.gen_config.channels,
                                           in_channels=in_channels)
                return ClipsProjectedDiscriminator(projected, video)
            return projected
        D_class = VideoDiscriminator if self.clips else Discriminator
        return D_class(self.gen_config.resolution, self.gen_config.channels, in_channels=in_channels)

    def close(self, clean: bool = True) -> None:
        """Leave the process group this trainer joined. A process that exits with gloo's
        group still alive can abort at interpreter shutdown ("terminate called without an
        active exception", seen in CI), so every multi-process caller ends with this.
        `clean` (training ended normally): first a barrier, bounded by a minute, so that no
        rank tears its connections down while another still uses them (the abort came
        back once in CI without it, under load). A rank leaving on an error passes False
        and does not wait for the others."""
        if getattr(self, "_owns_group", False) and dist.is_initialized():
            if clean:
                try:
                    if dist.get_backend() == "gloo":
                        dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
                    else:
                        dist.barrier()
                except RuntimeError as exc:  # a rank that left early: say so, leave anyway
                    self.log(f"rank {self.rank}: the others did not reach the end ({str(exc)[:200]})")
            dist.destroy_process_group()
        self._owns_group = False

    # ---- one step -------------------------------------------------------------------
    def _allreduce(self, module: torch.nn.Module) -> None:
        """Average the gradients over ranks: one flat all-reduce instead of one per tensor."""
        if self.world == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def _agree(self, *flags: bool) -> list[bool]:
        """Each flag true on any rank is true on all: ranks stop and save together (a rank
        that stopped alone would leave the others waiting in an all-reduce forever)."""
        if self.world == 1:
            return list(flags)
        t = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def _latents(self, B: int):
        lat = self.G.sample_latents(B, self.rng, self.device)
        if self.layout:  # real layouts, with the sigmas D sees on real images: where the renderer put
            real = self._real_layout(self.data.sample_layout(B, self.rng))  # objects, or a figure's parts
            if self.gen_config.hierarchical:
                lat.root, lat.offsets1, lat.offsets2, lat.root_sigma = (real.root, real.offsets1, real.offsets2,
                                                                        real.root_sigma)
            else:
                lat.centers, lat.sigmas = real.centers, real.sigmas
                if self.gen_config.object_kinds:  # told the kinds the renderer would draw there
                    lat.kinds = real.kinds
        return lat

    def _real_batch(self, B: int):
        """This rank's real images (and their ground truth): its own draws, different per rank,
        rendered `real_chunk` batches at a time (see TrainConfig) and handed out in turn."""
        K = self.cfg.real_chunk
        if K == 1:
            return self.data.sample(B, self.rng)
        if not self._real_queue or self._real_queue[0].batch != B:
            chunk = self.data.sample(B * K, self.rng)
            self._real_queue = [chunk.rows(i * B, (i + 1) * B) for i in range(K)]
        return self._real_queue.pop(0)

    def _d_inputs(self, B: int):
        """D's step's inputs: a real batch, its images as D sees them (with their layout when D is
        conditioned on it), and a fake batch drawn without gradients. bench_d_step times the same."""
        lat = self._latents(B)
        real_batch = self._real_batch(B)
        real = self._with_layout(real_batch.images, self._real_layout(real_batch)) if self.layout \
            else real_batch.images
        with torch.no_grad(), self.amp:
            fake = self._with_layout(self.G(lat), lat)
        return real_batch, real, fake

    def _d_loss(self, real_batch, real: torch.Tensor, fake: torch.Tensor, stats: dict) -> torch.Tensor:
        """D's loss on one real and one fake batch (R1 apart: update_d adds it when due)."""
        with self.amp:
            if self.projected:
                return self._projected_d_loss(real, real_batch, fake, stats)
            return d_logistic(self.D(real).float(), self.D(fake).float())

    def _with_layout(self, images: torch.Tensor, lat) -> torch.Tensor:
        """Images as a layout-conditional D sees them: with the heatmap of `lat`'s objects, or
        of its 1-2-4 hierarchy (the max over levels, at the image size), as a 4th channel."""
        if not self.layout:
            return images
        if not self.gen_config.hierarchical:
            return self._with_heatmap(images, lat.centers, lat.sigmas)
        from models.nets.heatmaps import hierarchy_heatmaps

        levels = hierarchy_heatmaps(lat.root, lat.offsets1, lat.offsets2, lat.root_sigma, size=images.shape[-1])
        heat = torch.stack(levels).amax(dim=0)
        return torch.cat([images, heat.to(images.dtype) * 2 - 1], dim=1)

    def _real_layout(self, layout: SceneBatch | SceneLayout):
        """A real batch's (or a drawn layout's) layout as latents (the fields _with_layout reads)."""
        return layout_latents(layout, self.gen_config.hierarchical, self.cfg.dataset)

    def _with_heatmap(self, images: torch.Tensor, centers: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
        """Append the summed object heatmap as a 4th channel in [-1, 1] (layout-conditional D)."""
        if not self.layout:
            return images
        heat = gaussian_heatmaps(centers, sigmas, images.shape[-1]).sum(dim=1, keepdim=True).clamp(0, 1)
        return torch.cat([images, heat.to(images.dtype) * 2 - 1], dim=1)

    def train_step(self) -> dict[str, torch.Tensor]:
        if self.clips:
            return video_train_step(self)
        cfg, G, D, B = self.cfg, self.G, self.D, self.batch
        stats: dict[str, torch.Tensor] = {}
        # Discriminator: logistic loss, lazy R1.
        real_batch, real, fake = self._d_inputs(B)
        self.update_d(self._d_loss(real_batch, real, fake, stats), lambda: r1_penalty(self._r1_target(), real), stats)

        # Generator: non-saturating loss + GradCAM alignment + block distortion.
        D.requires_grad_(False)
        lat = self._latents(B)
        do_align = cfg.align_weight > 0 and not self.layout and self.step % cfg.align_every == 0 and bool(
            self.gen_config.objects or self.gen_config.hierarchical)
        do_dist = cfg.distortion_weight > 0 and bool(self.gen_config.grid) and self.step % cfg.distortion_every == 0
        do_move = cfg.move_weight > 0 and self.step % cfg.move_every == 0  # move consistency (issue 14)
        with self.amp:
            def render() -> torch.Tensor:
                return G(lat, noise_mode="const" if do_dist or do_move else "random")

            # The offset fields of the main pass only, not of the regularisers' passes.
            fake, offsets = capture_offsets(G, render) if cfg.offset_penalty else (render(), {})
            seen = self._with_layout(fake, lat)
            if self.projected:
                loss_g = self._projected_g_loss(seen, stats, lat)
            else:
                loss_g = g_nonsaturating(D(seen).float())
            if self._colour_bank is not None:  # the batch's colours against the real bank's
                colour = sliced_colour_loss(colour_cells(fake), self._colour_bank, self.rng)
                stats["colour"] = colour.detach()
                loss_g = loss_g + cfg.colour_match * colour
            if self._chroma_bank is not None:  # its objects' patch colours against real objects'
                patches = texture_patches(fake, 4 * self.CHROMA_PATCHES, self.rng, patch_weight(lat, fake.shape[-1]))
                with torch.autocast(fake.device.type, enabled=False):  # gaps of 1e-4: float32
                    chroma = quantile_gap(off_line_colour(patches)[:, None], self._chroma_bank)
                stats["chroma"] = chroma.detach()
                loss_g = loss_g + cfg.chroma_match * chroma
            if self._limb_segmenter is not None:  # the segmenter must see the skeleton's limbs
                log_probs = self._limb_segmenter.segment(fake).float().log_softmax(dim=1)
                hierarchy = lat.need("root"), lat.need("offsets1"), lat.need("offsets2")
                if cfg.limb_parts:  # each part where the hierarchy fixes it
                    limb = part_segment_loss(log_probs, *hierarchy)
                else:
                    limb = limb_segment_loss(log_probs, bone_distances(*hierarchy, log_probs.shape[-1]),
                                             self._figure_class)
                stats["limb"] = limb.detach()
                loss_g = loss_g + cfg.limb_segment * limb
            if cfg.offset_penalty:
                size = offset_size_penalty(offsets, cfg.offset_penalty_res)
                stats["offsets"] = size.detach()
                loss_g = loss_g + cfg.offset_penalty * size
            if do_move:  # issue 14: kept apart from update_g, which the video step shares
                move = move_consistency_loss(G, lat, fake, generator_rng=self.rng).float()
                stats["move"] = move.detach()
                loss_g = loss_g + cfg.move_weight * move
        self.update_g(loss_g, lat, fake, D, do_align, do_dist, stats)
        self.end_step(lat, B)
        return stats

    def _projected_d_loss(self, real: torch.Tensor, real_batch: SceneBatch, fake: torch.Tensor,
                          stats: dict[str, torch.Tensor]) -> torch.Tensor:
        """The hinge on the heads' patch logits, plus d_segment x the per-pixel class loss (real
        pixels labelled with their rendered class, the procedural ground truth; fake ones
        "fake") and d_pixel x the pixel D's logistic loss."""
        cfg = self.cfg
        labels = None
        if cfg.d_segment:
            from models.metrics.probe import label_maps

            labels = label_maps(real_batch, self.data.world == "figures", self.classes)
        on_real = self._judge(real, labels)
        on_fake = self._judge(fake, None if labels is None else torch.zeros_like(labels))
        loss = d_hinge(on_real.logits.float(), on_fake.logits.float())
        if cfg.d_segment:
            assert on_real.classes is not None and on_real.labels is not None  # built with a segmenting head
            assert on_fake.classes is not None and on_fake.labels is not None
            segment = d_segment_loss(on_real.classes.float(), on_real.labels, on_fake.classes.float(),
                                     on_fake.labels >= 0)
            stats["segment_d"] = segment.detach()
            loss = loss + cfg.d_segment * segment
        if cfg.d_pixel and not self.clips:  # for clips the video D is the pixel D: video_step.py
            assert on_real.pixel is not None and on_fake.pixel is not None  # built with a pixel D
            pixel = d_logistic(on_real.pixel.float(), on_fake.pixel.float())
            stats["pixel_d"] = pixel.detach()
            loss = loss + cfg.d_pixel * pixel
        return loss

    def _projected_g_loss(self, seen: torch.Tensor, stats: dict[str, torch.Tensor],
                          lat: Latents | None = None) -> torch.Tensor:
        """G's side of `_projected_d_loss`. With `lat` of a generator told its objects' kinds,
        the per-pixel classes asked for are those kinds' (losses.intended_kinds)."""
        cfg = self.cfg
        labels = intended = None
        if cfg.d_segment:
            labels = seen.new_zeros(seen.shape[0], *seen.shape[-2:], dtype=torch.long)
            if self._kind_classes is not None and lat is not None and lat.kinds is not None:
                heat = gaussian_heatmaps(lat.need("centers"), lat.need("sigmas"), seen.shape[-1])
                labels = intended_kinds(heat, lat.kinds, self._kind_classes, len(self.classes))
        judged = self._judge(seen, labels)
        loss = g_hinge(judged.logits.float())
        if cfg.d_segment:
            assert judged.classes is not None and judged.labels is not None
            if self._kind_classes is not None and lat is not None and lat.kinds is not None:
                intended = judged.labels  # moved with the image by the augmentation
            segment = g_segment_loss(judged.classes, judged.labels >= 0, judged.heat, intended)
            stats["segment_g"] = segment.detach()
            loss = loss + cfg.d_segment * segment
        if cfg.d_pixel and not self.clips:
            assert judged.pixel is not None
            pixel = g_nonsaturating(judged.pixel.float())
            stats["pixel_g"] = pixel.detach()
            loss = loss + cfg.d_pixel * pixel
        return loss

    def _projected_d(self) -> ProjectedDiscriminator:
        """The projected D (self.projected): D itself, or for clips the one that judges frames."""
        from models.nets.projected import ProjectedDiscriminator

        D = self.D.frames if isinstance(self.D, ClipsProjectedDiscriminator) else self.D
        assert isinstance(D, ProjectedDiscriminator)  # self.projected
        return D

    def _judge(self, images: torch.Tensor, labels: torch.Tensor | None) -> Judgement:
        return self._projected_d().judge(images, labels)

    def _r1_target(self) -> torch.nn.Module:
        """What R1 regularises: the StyleGAN2 D, or the projected recipe's pixel D."""
        pixel = getattr(self.D, "pixel", None)
        return pixel if pixel is not None else self.D

    def update_d(self, loss_d: torch.Tensor, r1_fn, stats: dict[str, torch.Tensor]) -> None:
        """Add lazy R1 (every r1_every steps, scaled by it), step D. Shared by the image and
        the video step; `r1_fn` computes the penalty on this step's real batch."""
        cfg = self.cfg
        # the projected D needs no R1; a pixel D beside it gets it, weighed as its loss is
        r1_weight = cfg.d_pixel if self.projected else 1.0
        if self.step % cfg.r1_every == 0 and cfg.r1_gamma > 0 and r1_weight > 0:
            r1 = r1_fn()
            stats["r1"] = r1.detach()
            loss_d = loss_d + r1 * (cfg.r1_gamma / 2) * cfg.r1_every * r1_weight
        self.opt_D.zero_grad(set_to_none=True)
        loss_d.backward()
        self._allreduce(self.D)
        self.opt_D.step()
        stats["loss_d"] = loss_d.detach()

    def update_g(self, loss_g: torch.Tensor, lat, fake: torch.Tensor, align_d, do_align: bool, do_dist: bool,
                 stats: dict[str, torch.Tensor]) -> None:
        """Add the GradCAM alignment and block-distortion terms, step G, unfreeze D.
        Shared by the image and the video step; `align_d` is what GradCAM looks through."""
        cfg = self.cfg
        stats["loss_g"] = loss_g.detach()
        with self.amp:
            if do_align:
                align = alignment_loss(self.G, align_d, lat, fake, cfg.tau).float()
                stats["align"] = align.detach()
                loss_g = loss_g + cfg.align_weight * align
            if do_dist:
                distortion = distortion_loss(self.G, lat, fake, generator_rng=self.rng).float()
                stats["distortion"] = distortion.detach()
                loss_g = loss_g + cfg.distortion_weight * distortion
        self.opt_G.zero_grad(set_to_none=True)
        loss_g.backward()
        self._allreduce(self.G)
        self.opt_G.step()
        self.D.requires_grad_(True)

    def end_step(self, lat, B: int) -> None:
        """After both updates: the average w, the EMA generator, the counters."""
        cfg, G = self.cfg, self.G
        with torch.no_grad():  # the average w for truncation, and the EMA generator
            w_mean = G.mapping(lat.z_global).mean(dim=0)
            if self.world > 1:  # over the global batch, so that every rank keeps the same w_avg
                dist.all_reduce(w_mean)
                w_mean /= self.world
            G.mapping.w_avg.lerp_(w_mean, 0.005)
            half_life = cfg.ema_kimg * 1000
            if cfg.ema_rampup > 0:  # StyleGAN2-ADA: a short half-life while few images are seen
                half_life = min(half_life, self.images_seen * cfg.ema_rampup)
            beta = 0.5 ** (B * self.world / max(half_life, 1e-8))
            for p_ema, p in zip(self.G_ema.parameters(), G.parameters()):
                p_ema.lerp_(p, 1 - beta)
            for b_ema, b in zip(self.G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        self.step += 1
        self.images_seen += B * self.world  # clips, for a video generator

    # ---- saving and resuming ----------------------------------------------------------
    def _rng_states(self) -> dict[str, torch.Tensor]:
        """Every rank's data generator (gathered: each rank draws its own batches), and this
        process's torch generators. Collective with several processes: all ranks call it."""
        states = {"data": self.rng.get_state(), "torch": torch.get_rng_state()}
        if self.world > 1:
            mine = states["data"].to(self.device)
            every = [torch.empty_like(mine) for _ in range(self.world)]
            dist.all_gather(every, mine)
            for r, state in enumerate(every):
                states[f"data_rank{r}"] = state.cpu()
        if self.device.type == "cuda":
            states["cuda"] = torch.cuda.get_rng_state(self.device)
        return states

    def check_finite(self) -> None:
        """Raise TrainingDiverged if a weight of G, D or G_ema is NaN or infinite."""
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            for key, p in module.named_parameters():
                if not torch.isfinite(p).all():
                    raise TrainingDiverged(f"step {self.step}: weight {name}.{key} is not finite; nothing was saved"
                                           f" after the last good state in {self.out}")

    def save(self) -> Path | None:
        """Training state (for --resume) and the shippable EMA checkpoint, both atomic.
        Collective with several processes (the RNG states are gathered); rank 0 writes."""
        self.check_finite()
        rngs = self._rng_states()
        if self.rank != 0:
            return None
        self.out.mkdir(parents=True, exist_ok=True)
        info = {"config": self.cfg.to_dict(), "step": self.step, "images_seen": self.images_seen,
                "train_seconds": self.train_seconds}
        save_train_state(self.out / STATE_FILE, {"G": self.G, "D": self.D, "G_ema": self.G_ema},
                         {"G": self.opt_G, "D": self.opt_D}, rngs, info)
        ckpt = self.out / f"{self.cfg.name}.safetensors"
        save_checkpoint(ckpt, self.G_ema, {
            "name": self.cfg.name, "architecture": self.cfg.architecture,
            "trained_on": {"dataset": self.cfg.dataset, "images": self.images_seen, "steps": self.step,
                           "minutes": round(self.train_seconds / 60, 2), "device": self._device_name(),
                           "training_config": self.cfg.to_dict()},
            "metrics": {}})
        return ckpt

    def load(self, path: str | os.PathLike) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / STATE_FILE
        # Checked against these modules and optimisers before anything is loaded into them.
        modules, optimizers, rngs, info = load_train_state(
            p, expect_modules={"G": self.G, "D": self.D, "G_ema": self.G_ema},
            expect_optimizers={"G": self.opt_G, "D": self.opt_D})
        for name, module in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            module.load_state_dict(modules[name])
        for opt, saved in ((self.opt_G, optimizers["G"]), (self.opt_D, optimizers["D"])):
            # Adam's moments from the state, its settings (lr, betas, as this config sets them)
            # from this run: load_state_dict would bring back the saved run's.
            settings = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
            opt.load_state_dict(saved)
            for group, own in zip(opt.param_groups, settings):
                group.update(own)
        saved_cfg = info.get("config")
        saved_cfg = saved_cfg if isinstance(saved_cfg, dict) else {}
        changed = [f"{k} {saved_cfg[k]!r} -> {v!r}" for k, v in self.cfg.to_dict().items()
                   if k in saved_cfg and saved_cfg[k] != v and k != "name"]
        if changed and self.rank == 0:  # e.g. a comparison arm continued under the plan's config
            self.log(f"resuming {p} with this config's settings: {', '.join(changed)}")
        # This rank's own data generator; a state saved with another number of processes has
        # none for it: then a fresh one, seeded by rank and step (still different per rank).
        mine = rngs.get(f"data_rank{self.rank}") if self.world > 1 else None
        if mine is None and self.rank == 0:
            mine = rngs.get("data")
        if mine is not None:
            self.rng.set_state(mine)
        else:
            self.rng.manual_seed(self.cfg.seed * 7919 + self.rank + 1_000_003 * info["step"])
        torch.set_rng_state(rngs["torch"])
        if "cuda" in rngs and self.device.type == "cuda":
            torch.cuda.set_rng_state(rngs["cuda"], self.device)
        self.step, self.images_seen = info["step"], info["images_seen"]
        self.train_seconds = info.get("train_seconds", 0.0)

    def _device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"

    # ---- the loop ---------------------------------------------------------------------
    def save_samples(self, n: int = 16) -> Path:
        lat = self.G_ema.sample_latents(n, torch.Generator().manual_seed(123), self.device)
        with torch.no_grad():
            imgs = to_uint8(self.G_ema(lat, noise_mode="const"))
        rows = int(math.sqrt(n))
        grid = np.concatenate([np.concatenate(list(imgs[r * rows:(r + 1) * rows]), axis=1) for r in range(n // rows)])
        path = self.out / "samples" / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path)
        return path

    def run(self, minutes: float | None = None, max_steps: int | None = None) -> Path | None:
        """Train until `minutes` of training time or `max_steps` (whichever first); save."""
        cfg = self.cfg
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
        log_path = self.out / "log.csv"
        fields = LOG_FIELDS
        if self.rank == 0:
            trim_log(log_path, self.step)  # rows written after the state we resumed from go
        new_log = not log_path.exists()
        log_file = open(log_path, "a", newline="") if self.rank == 0 else None
        writer = csv.DictWriter(log_file, fields, extrasaction="ignore") if log_file else None
        if writer and new_log:
            writer.writeheader()
        if self.rank == 0:
            self.log(f"{cfg.name}: {self.precision} on {self.device.type}"
                     + (" (bf16 autocast, channels-last)" if self.precision == "bf16" and self.device.type == "cpu"
                        else ""))
        budget = None if minutes is None else minutes * 60
        started, last_save, window = time.time(), time.time(), (time.time(), self.images_seen)
        pending: list[tuple[int, dict[str, torch.Tensor]]] = []  # losses not yet read (see _settle)
        start_seconds = self.train_seconds
        self._phase = "training"
        try:
            while True:
                elapsed = time.time() - started
                stop = self.stop_requested or (max_steps is not None and self.step >= max_steps) \
                    or (budget is not None and elapsed >= budget)
                save_due = time.time() - last_save > cfg.save_every_minutes * 60
                stop, save_due = self._agree(stop, save_due)
                if stop:
                    break
                if save_due:
                    self._settle(pending)  # no non-finite step may hide behind a save
                    self.save()
                    last_save = time.time()
                stats = self.train_step()
                pending.append((self.step, stats))
                self.train_seconds = start_seconds + time.time() - started
                if self.step % cfg.log_every == 0:
                    floats = self._settle(pending)  # every rank, at the same steps
                    if self.rank == 0:
                        now = time.time()
                        rate = (self.images_seen - window[1]) / max(now - window[0], 1e-6)
                        window = (now, self.images_seen)
                        assert writer is not None and log_file is not None  # rank 0 opened the log
                        writer.writerow({"step": self.step, "images": self.images_seen,
                                         "seconds": round(self.train_seconds, 1), "images_per_s": round(rate, 1),
                                         **floats})
                        log_file.flush()
                        self._progress(floats, rate, elapsed, budget)
                if self.rank == 0 and self.step % cfg.sample_every == 0:
                    self.save_samples()
        except KeyboardInterrupt:
            self.log("\ninterrupted: saving")
        finally:
            self._phase = "saving"
            if log_file:
                log_file.close()
        try:
            if self.stop_requested:
                self.log("\nstopped: saving")
            self._settle(pending)
            if self.rank == 0:
                self.save_samples()
            return self.save()
        finally:
            self._phase = "idle"

    def on_stop_signal(self, signum=None, frame=None) -> None:
        """A signal handler (SIGTERM, SIGINT): during run(), stop after the step in progress and
        save -- raised in the middle of a step, KeyboardInterrupt saved D and G updated and the
        EMA and the counters not, a state that resumes differently. A second signal while
        training interrupts at once; one during the final save is ignored (it is brief and
        atomic); outside run(), KeyboardInterrupt as Python's default does."""
        if self._phase == "training" and not self.stop_requested:
            self.stop_requested = True
            return
        if self._phase == "saving":
            return
        raise KeyboardInterrupt

    def _settle(self, pending: list[tuple[int, dict[str, torch.Tensor]]]) -> dict[str, float]:
        """The losses of the steps since the last call, read in one device sync (reading
        each as it came cost 2-5 GPU syncs a step); the newest value of each loss as floats
        (the terms computed every Nth step come from the last step that computed them: the
        logged step itself is often not one, e.g. every 10th step with a term every 2nd,
        where the step counter is odd while the term's step runs). Raises
        TrainingDiverged at the first non-finite one; every rank stops, not only the one
        that saw it. Called at the same steps on every rank (log steps, saves, the end)."""
        steps = [(step, list(stats), torch.stack([v.float().reshape(()) for v in stats.values()]))
                 for step, stats in pending if stats]
        pending.clear()
        flat = torch.cat([values for _, _, values in steps]).tolist() if steps else []
        first_bad, offset, newest = None, 0, {}
        for step, names, _ in steps:
            floats = dict(zip(names, flat[offset:offset + len(names)]))
            offset += len(names)
            bad = [k for k, v in floats.items() if not math.isfinite(v)]
            if bad and first_bad is None:
                first_bad = (step, ", ".join(f"{k}={floats[k]}" for k in bad))
            newest.update(floats)
        if self._agree(first_bad is not None)[0]:
            step, what = first_bad or (self.step, "a loss of another process")
            raise TrainingDiverged(f"step {step}: {what} is not finite; stopped without saving:"
                                   f" the last good state in {self.out} is kept")
        return newest

    def _progress(self, stats: dict[str, float], rate: float, elapsed: float, budget: float | None) -> None:
        frac = min(1.0, elapsed / budget) if budget else 0.0
        bar = "#" * int(frac * 20) + "-" * (20 - int(frac * 20))
        losses = " ".join(f"{k}={v:.3g}" for k, v in stats.items())
        line = f"[{bar}] step {self.step} | {self.images_seen} img | {rate:.1f} img/s | {losses}"
        if sys.stderr.isatty():
            print("\r" + line[:150], end="", file=sys.stderr, flush=True)
        else:
            self.log(line)


def layout_latents(layout: SceneBatch | SceneLayout, hierarchical: bool, dataset: str = "figures") -> Latents:
    """A real batch's (or a drawn layout's) layout as latents: the objects' centers and
    default sigmas, or, for a hierarchical generator, the hierarchy read off the skeletons."""
    centers = layout.centers
    B = centers.shape[0]
    lat = Latents(z_global=centers.new_zeros(B, 1))
    if hierarchical:
        if layout.keypoints is None:  # TrainConfig allows only the figures dataset, which has them
            raise ValueError(f"a layout-conditional hierarchical generator needs skeletons, and"
                             f" {dataset!r} has none")
        lat.root, lat.offsets1, lat.offsets2 = skeleton_hierarchy(layout.keypoints)
        lat.root_sigma = centers.new_full((B,), DEFAULT_ROOT_SIGMA)
    else:
        lat.centers = centers
        lat.sigmas = centers.new_full(centers.shape[:2], DEFAULT_OBJECT_SIGMA) * layout.present.to(centers.dtype)
        lat.kinds = layout.kinds  # the renderer's kinds (rooms): what a generator told kinds is asked to draw
    return lat


def trim_log(path: Path, step: int) -> None:
    """Drop the rows of log.csv after `step` (written after the last save, before a stop we
    resume from), so that a resumed run's log does not repeat steps. A log written before a
    column was added (e.g. `move`) gets today's header, so that appended rows line up."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = reader.fieldnames
    keep = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
    if len(keep) == len(rows) and header == LOG_FIELDS:
        return
    import io

    from models.document.fileio import atomic_write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_FIELDS, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(keep)
    atomic_write_bytes(path, buf.getvalue().encode())
