"""Training configurations: which generator, which data, and the loss/optimiser settings.

`steergan train CONFIG` takes a name from TRAINING_CONFIGS or a JSON file of the same keys.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from models.config import ARCHITECTURES, ConfigError
from models.document.fileio import FileProblem, read_regular
from models.io.safetensors_io import SafetensorsProblem, parse_json

MAX_CONFIG_BYTES = 1 << 20  # a training config is a few hundred bytes of JSON

# How D is built and trained (issue 23). "stylegan2": StyleGAN2's residual D, logistic loss,
# lazy R1 (every recipe before issue 23; kept so that the comparison can be re-run).
# "projected": Projected GAN on a frozen in-domain backbone (models/nets/projected.py),
# hinge loss, no R1, DiffAugment.
RECIPES = ("stylegan2", "projected")


@dataclass(frozen=True)
class TrainConfig:
    name: str
    architecture: str  # a name in models.config.ARCHITECTURES
    dataset: str  # a name in models.data.DATASETS
    batch: int = 32
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 1.0
    r1_every: int = 16  # lazy R1: every N steps, scaled by N
    ema_kimg: float = 5.0  # half-life of the generator EMA, in thousands of images
    align_weight: float = 1.0  # SpatialGAN GradCAM alignment (0 = off)
    align_every: int = 2
    tau: float = 0.25
    distortion_weight: float = 10.0  # SSN block-distortion regulariser (0 = off)
    distortion_every: int = 2
    sample_every: int = 500  # steps between sample grids
    log_every: int = 20
    save_every_minutes: float = 5.0
    seed: int = 0
    # Use the procedural ground truth: G's heatmap centers are real layouts and D sees the
    # heatmap as a 4th input channel (a layout-conditional D). Not the paper's method (which
    # needs no labels) but it teaches co-location in minutes rather than hours: for the
    # CPU-trained default. The GradCAM alignment is off with it (D's input differs).
    condition_d_on_layout: bool = False
    # Move consistency (issue 14, losses.move_consistency_loss): render the same latents with
    # one object's center moved; the object's region, shifted, must match, the rest must not
    # change. Teaches that the object that arrives is the one that left. 0 = off.
    move_weight: float = 0.0
    move_every: int = 4
    # Real images are rendered this many batches at a time and handed out a batch a step. The
    # renderer issues the same ~2,600 ops whatever the batch (rooms at 128 px: 64 or 512
    # images), and a GPU step is bound by kernel launches (the first GPU profile: 7,000 a
    # step, a fifth of the step in the renderer), so 8 cuts the renderer's launches eightfold.
    # 1 = a render every step (the CPU, where rendering costs per image, not per call).
    real_chunk: int = 1
    recipe: str = "stylegan2"  # a name in RECIPES
    # The projected D's DiffAugment: "color,translation" (Projected GAN's choice) or
    # "translation". Colour jitter on both sides left the D blind to saturation and
    # contrast: G's colours washed out (README, "Recipes").
    d_augment: str = "color,translation"
    # The projected D's heads also see the RGB image, area-downsampled to each head's scale:
    # the backbone, trained to segment, is nearly blind to saturation and contrast, and
    # without this G's colours washed out (README, "Recipes").
    d_rgb_heads: bool = False
    # The projected D's heads end with a minibatch-std channel (the StyleGAN2 D always has
    # one): without it every wall of a batch drifted to one grey while each image on its own
    # looked plausible (README, "Recipes"). Both d_* head settings mean nothing to stylegan2.
    d_mbstd: bool = False
    # The finest projected head sees the 64 px pixels themselves (space-to-depth), not their
    # 2x2 averages: what the relay's iridescent 2-px stripes hide behind. Needs d_rgb_heads.
    d_rgb_detail: bool = False
    # Every projected head also sees, per place and colour channel, how much the batch's
    # images differ there (nets/projected.colour_variety): d_mbstd's one number did not stop
    # the walls' colours collapsing to one grey (README, "Recipes", the fourth pair).
    d_rgb_variety: bool = False
    # OASIS on the projected features (Sushko et al.): a per-pixel head names every pixel's
    # class or "fake"; real pixels are labelled by the renderer, and G is rewarded where D
    # sees an object at its layout's objects and background elsewhere. The weight of that
    # loss beside the hinge, in D's and G's step; 0 = off.
    d_segment: float = 0.0
    # A StyleGAN2 D on the pixels beside the projected one (logistic loss, lazy R1; weight of
    # its loss, 0 = off): every projected variant let the walls' colours collapse to one grey
    # where the StyleGAN2 D kept them varied (README, "Recipes", the fifth pair).
    d_pixel: float = 0.0
    # G's batch must match a bank of real images in the distribution of its 4x4 cell colours
    # (losses.sliced_colour_loss): every projected D let the walls drift to one grey-lavender
    # (README, "Recipes"). The weight beside G's adversarial loss; 0 = off. Real batches of 8
    # score about 0.0034 against the bank, the collapsed projected runs 0.0055-0.0063.
    colour_match: float = 0.0
    # G's patches at its objects must stray from one colour line as little as real objects'
    # do, as a distribution (losses.off_line_colour): a real object's 4x4 patch mixes at most
    # two flat colours, the relay's iridescent ones change hue pixel to pixel (session 18).
    # The weight beside G's adversarial loss; 0 = off. Real batches of 8 score about 1e-4
    # against the bank, the shipped rooms-cpu about 4e-4.
    chroma_match: float = 0.0
    # G's figures must be seen by the projected D's frozen backbone (a segmenter of the
    # procedural data, never a metric's network) as the figure class along every bone of the
    # layout's skeleton and as background far from it (losses.limb_segment_loss): no figures
    # model drew arms. The weight beside G's adversarial loss; 0 = off; hierarchical only.
    limb_segment: float = 0.0
    # limb_segment's judge tells the figure's parts apart (head, torso, arm, leg: the part
    # segmenter, train_backbone --parts), and G is asked for each part where its hierarchy
    # fixes it (training.parts), beside the figure along every bone: the figures drew head,
    # arms and torso of one rainbow stuff (session 24). Needs limb_segment above 0.
    limb_parts: bool = False
    # StyleGAN2-ADA's EMA ramp-up: the half-life is at most ramp x images seen (0 = off).
    ema_rampup: float = 0.0
    # G pays this weight x the mean squared size (image units) of its MTM offsets at
    # resolutions up to offset_penalty_res (losses.offset_size_penalty): the 8 px offsets
    # carried a resampled block into its neighbours (README, the ninth comparison). 0 = off.
    offset_penalty: float = 0.0
    offset_penalty_res: int = 8

    def __post_init__(self) -> None:
        self._check_types_and_ranges()
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.architecture!r}; known: {sorted(ARCHITECTURES)}")
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe {str(self.recipe)[:40]!r}; known: {list(RECIPES)}")
        if self.d_augment not in ("color,translation", "translation", "none"):
            raise ConfigError(f"d_augment must be 'color,translation', 'translation' or 'none', got"
                              f" {str(self.d_augment)[:40]!r}")
        if not 0 <= self.ema_rampup <= 1:
            raise ConfigError(f"ema_rampup must be in [0, 1], got {self.ema_rampup}")
        if self.d_rgb_detail and not self.d_rgb_heads:
            raise ConfigError("d_rgb_detail needs d_rgb_heads true (the detail replaces the finest head's pixels)")
        if self.limb_parts and not self.limb_segment:
            raise ConfigError("limb_parts names limb_segment's judge: set limb_segment above 0 (2 as in figures-cpu)")
        for name in ("d_segment", "d_pixel"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ConfigError(f"{name} must be 0 (off) or a weight up to 100, got {value}")
            if value and self.recipe != "projected":
                raise ConfigError(f"{name} is a part of the projected D; recipe {self.recipe!r} has none")
        if self.recipe == "projected":
            if ARCHITECTURES[self.architecture].time is not None and not self.d_pixel:
                raise ConfigError("the projected recipe for clips judges their motion with the video D, weighed"
                                  " by d_pixel: set d_pixel above 0 (1 as in 'clips')")
            if self.align_weight > 0 and not self.condition_d_on_layout:
                raise ConfigError("the projected recipe has no GradCAM alignment: set align_weight 0 or"
                                  " condition_d_on_layout true")
        for name in ("batch", "r1_every", "align_every", "distortion_every", "move_every", "sample_every",
                     "log_every", "real_chunk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.condition_d_on_layout:
            arch = ARCHITECTURES[self.architecture]
            if not (arch.objects or arch.hierarchical):
                raise ConfigError("condition_d_on_layout needs an architecture with objects or hierarchical heatmaps")
            if arch.hierarchical and (self.dataset != "figures" or arch.time is not None):
                raise ConfigError("condition_d_on_layout with hierarchical heatmaps needs still images of the"
                                  " figures dataset (its skeletons give the hierarchy)")
        if not 0 <= self.colour_match <= 1000:
            raise ConfigError(f"colour_match must be 0 (off) or a weight up to 1000, got {self.colour_match}")
        if not 0 <= self.offset_penalty <= 1000:
            raise ConfigError(f"offset_penalty must be 0 (off) or a weight up to 1000, got {self.offset_penalty}")
        if self.offset_penalty:
            arch = ARCHITECTURES[self.architecture]
            if not any(r <= self.offset_penalty_res for r in arch.mtm):
                raise ConfigError(f"offset_penalty: {self.architecture!r} has no MTM layer at or below"
                                  f" {self.offset_penalty_res} px (its MTM resolutions: {list(arch.mtm)})")
            if arch.time is not None:
                raise ConfigError(f"offset_penalty is not implemented for generators with time ({self.architecture!r})")
        if not 0 <= self.chroma_match <= 10000:
            raise ConfigError(f"chroma_match must be 0 (off) or a weight up to 10000, got {self.chroma_match}")
        if not 0 <= self.limb_segment <= 100:
            raise ConfigError(f"limb_segment must be 0 (off) or a weight up to 100, got {self.limb_segment}")
        if self.limb_segment and not ARCHITECTURES[self.architecture].hierarchical:
            raise ConfigError(f"limb_segment needs a figure's skeleton: {self.architecture!r} is not hierarchical")
        for name in ("colour_match", "chroma_match"):
            if getattr(self, name) and ARCHITECTURES[self.architecture].time is not None:
                raise ConfigError(f"{name} is not implemented for generators with time ({self.architecture!r})")
        if self.move_weight < 0:
            raise ConfigError(f"move_weight must be 0 (off) or positive, got {self.move_weight}")
        if self.move_weight > 0:
            arch = ARCHITECTURES[self.architecture]
            if not (arch.objects or arch.hierarchical):
                raise ConfigError(f"move_weight needs an architecture with objects or hierarchical heatmaps;"
                                  f" {self.architecture!r} has neither")
        if ARCHITECTURES[self.architecture].time is not None and not self.dataset.startswith("clips-"):
            raise ConfigError(f"architecture {self.architecture!r} has the time capability: it trains on clips"
                              f" (a clips-* dataset), not on {self.dataset!r}")

    def _check_types_and_ranges(self) -> None:
        """Every field its declared type (a JSON config can hold anything: "x" for lr, 2.5 for
        batch, "true" for a flag), numbers finite and in range, and the name a plain file name
        (it names the run folder and the checkpoint: "../x" or "/tmp/x" would put them elsewhere)."""
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), _FIELD_KINDS.get(str(field.type))
            if kind is bool and not isinstance(value, bool):
                raise ConfigError(f"{field.name} must be true or false, got {_short(value)}")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{field.name} must be a whole number, got {_short(value)}")
            if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
                raise ConfigError(f"{field.name} must be a finite number, got {_short(value)}")
            if kind is str and not isinstance(value, str):
                raise ConfigError(f"{field.name} must be a string, got {_short(value)}")
        name = self.name
        if not (0 < len(name) <= 100) or name in (".", "..") or any(c in name for c in "/\\\x00"):
            raise ConfigError(f"name must be a plain file name of 1-100 characters (no / or \\), got {_short(name)}")
        betas = self.betas
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {_short(betas)}")
        if self.lr <= 0:  # (no upper bound: a run that diverges says so at its step)
            raise ConfigError(f"lr must be above 0, got {self.lr}")
        for key in ("r1_gamma", "ema_kimg", "align_weight", "tau", "distortion_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be 0 or more, got {getattr(self, key)}")
        if self.save_every_minutes <= 0:
            raise ConfigError(f"save_every_minutes must be above 0, got {self.save_every_minutes}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed must be in [0, 2^63), got {self.seed}")
        if self.batch > 4096:
            raise ConfigError(f"batch must be at most 4096, got {self.batch}")
        if self.offset_penalty_res < 1:
            raise ConfigError(f"offset_penalty_res must be at least 1, got {self.offset_penalty_res}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training config keys: {unknown}")
        try:
            config = cls(**data)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None
        from models.data import DATASETS  # (torch: only for a config read from a file)

        if config.dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {_short(config.dataset)}; known: {list(DATASETS)}")
        return config


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# TrainConfig's field annotations (strings: `from __future__ import annotations`) -> the type checked.
_FIELD_KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


class _MoveConsistency(TypedDict):
    move_weight: float
    move_every: int


# The move-consistency term (issue 14) at the weight the CPU comparison measured: from the same
# state, 40 minutes each, it raised figures-cpu's tracked co-move from 0.46 to 0.73 (README,
# "The comparison that decided it"). On in the GPU configs, in figures-cpu and (the ninth
# comparison, session 12) in rooms-cpu.
MOVE_CONSISTENCY = _MoveConsistency(move_weight=10.0, move_every=2)

# G's figures segmented as the figure along every bone of their skeleton by the projected D's
# frozen backbone (TrainConfig.limb_segment), at the weight the twenty-second comparison ran
# (session 22: from the relay's state, at equal images, 36k, the outer arms seen 0.65 against
# 0.37, real 0.52; FD 0.013 against 0.036; tracked 0.82 against 0.76; realism 0.60 against 0.62).
LIMB_SEGMENT = 2.0

_ROOMS_CPU_PROJECTED = TrainConfig("rooms-cpu-projected", "rooms-cpu", "rooms", batch=8, align_weight=0.0,
                                   distortion_every=4, condition_d_on_layout=True, ema_kimg=1.0, sample_every=100,
                                   log_every=10, save_every_minutes=3.0, recipe="projected")

# The fifth pair's winner (README, "Recipes"), rooms-cpu's recipe since session 10.
_ROOMS_CPU_SEGMENT = dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-segment",
                                         d_augment="translation", d_rgb_heads=True, d_mbstd=True,
                                         d_rgb_variety=True, d_segment=1.0)

# The seventh pair's winner (session 11): the segment recipe with G matching the real rooms'
# cell colours as a distribution (colour_match, weight 100: about 0.3 beside a hinge of 1-2).
_ROOMS_CPU_COLOUR = dataclasses.replace(_ROOMS_CPU_SEGMENT, name="rooms-cpu-proj-colour", colour_match=100.0)
# The twenty-fourth comparison's arm (rooms-cpu-halflr told each object's kind), the relay's rooms
# recipe from session 24 to 27; rooms-cpu-ema10 is this with a longer EMA.
_ROOMS_CPU_KINDS = dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-kinds", architecture="rooms-cpu-kinds",
                                       lr=0.001, **MOVE_CONSISTENCY)
# The CPU-trained figures models' settings (64 px, batch 8, a layout-conditional StyleGAN2 D, move
# consistency): figures-cpu before limb_segment; every figures-cpu-* config is this with its changes.
_FIGURES_CPU = TrainConfig("figures-cpu-nolimbs", "figures-cpu", "figures", batch=8, align_weight=0.0,
                           condition_d_on_layout=True, ema_kimg=1.0, sample_every=100, log_every=10,
                           save_every_minutes=3.0, **MOVE_CONSISTENCY)

TRAINING_CONFIGS: dict[str, TrainConfig] = {
    # Since session 14 the rooms models' objects enter from 16 px and their blocks from 8 px
    # (the eleventh comparison: 12 levels of change outside a moved object became 3.6), and
    # since session 15 each object draws its own sprite (the twelfth: tracked co-move 0.05 ->
    # 0.20), with its own style in place of the blocks', the blocks from 16 px (the
    # thirteenth: tracked 0.21 -> 0.34, block locality 4.5 -> 37 levels); the configs whose
    # architecture is "rooms", "rooms-cpu" or "clips" keep the old wiring, "rooms-cpu-local"
    # the session-14 one, "rooms-cpu-sprites" the twelfth's.
    # The 128 px GPU model on rooms-cpu's recipe (session 17; issue 23's "adopt the winner"),
    # its finest head seeing the 128 px pixels themselves (d_rgb_detail: the backbone sees 64
    # px, so G's finest layer would otherwise be judged only through 2x2 averages).
    # rooms-stylegan2 is its recipe before, which gave colour haze in two GPU sessions.
    "rooms": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms", architecture="rooms-kinds", d_rgb_detail=True,
                                 sample_every=500, log_every=20, save_every_minutes=5.0, **MOVE_CONSISTENCY),
    "rooms-stylegan2": TrainConfig("rooms-stylegan2", "rooms-own", "rooms", **MOVE_CONSISTENCY),
    "rooms-64": TrainConfig("rooms-64", "rooms-64", "rooms", batch=16),
    # The CPU-trained default: small, 64 px, layout-conditional D. Since issue 23 the projected
    # D without colour jitter, its heads seeing the pixels and the batch's colour spread, with
    # OASIS's per-pixel classes (the fifth pair of the comparison, README "Recipes"), and G
    # matching the real rooms' colours as a distribution (the seventh pair, session 11), and
    # move consistency (the ninth comparison, session 12; rooms-cpu-proj-colour is the
    # recipe without it), on the architecture whose objects enter from 16 px and blocks from
    # 8 px (the eleventh, session 14; rooms-cpu-move is the same recipe on the old wiring) and
    # whose objects draw their own sprites (the twelfth, session 15; rooms-cpu-local without),
    # with their own style in place of the blocks' and the blocks from 16 px (the thirteenth,
    # session 15; rooms-cpu-sprites without);
    # rooms-cpu-stylegan2 is the recipe before issue 23, kept so that the comparison can be
    # re-run.
    # Session 18 added chroma_match 1000 (the fifteenth comparison: the speckle statistic
    # halved, every judge level over 8.6k images); session 19 took it out again (the
    # sixteenth: from the shipped model's state, at equal images, 17k, realism 0.829 with it
    # against 0.775 without): rooms-cpu is rooms-cpu-own's recipe, rooms-cpu-chroma the
    # recipe with the term.
    # Since session 24 told each object's kind (the twenty-fourth comparison; rooms-cpu-own is
    # the recipe before): rooms-cpu-kinds' architecture, grown from a rooms-cpu-own state.
    "rooms-cpu": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu", architecture="rooms-cpu-kinds",
                                     **MOVE_CONSISTENCY),
    # The eighteenth comparison (session 20): rooms-cpu with twice the channels at 64 px, grown
    # from a rooms-cpu state (nets/widen.py), against rooms-cpu at equal images.
    "rooms-cpu-wide": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-wide", architecture="rooms-cpu-wide",
                                          **MOVE_CONSISTENCY),
    # The next candidate (session 20's note): the lineage has not improved on the shipped
    # 319,168 state over 48k images since (the eighteenth comparison's control: realism 0.79
    # -> 0.83); StyleGAN2's learning rate 0.002 was set for batches of 32-64, rooms-cpu's is
    # 8: half of it, late in training. The twentieth comparison (session 21): realism 0.754
    # against the control's 0.793 at equal images (23k), FD 0.022 against 0.035: the relay's
    # rooms lineage continues with it (checkpoints/relay/plan.json).
    "rooms-cpu-halflr": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-halflr", architecture="rooms-cpu-own",
                                            lr=0.001, **MOVE_CONSISTENCY),
    # The twenty-fourth comparison (session 24): rooms-cpu-halflr told each object's kind (the
    # real layout's; architecture rooms-cpu-kinds, grown from a rooms-cpu state) and asked, per
    # pixel, for that kind where the layout puts the object (OASIS's conditional form; without
    # kinds G was asked for "any object").
    "rooms-cpu-kinds": _ROOMS_CPU_KINDS,
    # The twenty-sixth comparison (session 27): rooms-cpu-kinds with a ten times longer EMA
    # half-life (10k images, StyleGAN2's; rooms-cpu's 1k is 125 steps of batch 8). Late in
    # training the lineage's judges wander (realism 0.76-0.83, FD 0.03-0.07 within 30k images)
    # as G oscillates about a good solution; the EMA, which is what ships, averages over more
    # of it. The G and D steps are the same as rooms-cpu-kinds'. From the relay's 459,144 state,
    # at equal images (61k): realism 0.812 against the control's 0.833, the rest level (README):
    # the relay's rooms lineage continues with it; rooms-cpu keeps 1k for training from scratch.
    "rooms-cpu-ema10": dataclasses.replace(_ROOMS_CPU_KINDS, name="rooms-cpu-ema10", ema_kimg=10.0),
    # The twenty-seventh comparison (session 28): twice that half-life again (20k images). The
    # mean of the session-27 control's saves over 20k images scored below the 10k EMA (realism
    # 0.787 against 0.812), so a longer window may pay further; from the relay's 521,056 state
    # against the relay continuing with 10k, at equal images (40k): realism 0.820 against
    # 0.819, FD 0.015 against 0.020, the rest level (README): not adopted.
    "rooms-cpu-ema20": dataclasses.replace(_ROOMS_CPU_KINDS, name="rooms-cpu-ema20", ema_kimg=20.0),
    # The twenty-eighth comparison (session 29): rooms-cpu-ema10 with twice the batch. The
    # lineage has held realism 0.80-0.82 for 60k images and no average of G moved it, so the
    # limit may be the steps' own noise: batch 8 is a quarter of what StyleGAN2's settings
    # assume. Per image the steps move G as far as ema10's (half as many, each at the same
    # lr), each along a gradient of twice the images; the D's groups (mbstd, colour variety)
    # stay 4 images. Warm-starts from a rooms-cpu-ema10 state (batch is not in the weights). From
    # the relay's 576,840 state at equal images (66k): realism 0.814 against 0.804, FD 0.016
    # against 0.025, the rest level (README): not adopted.
    "rooms-cpu-batch16": dataclasses.replace(_ROOMS_CPU_KINDS, name="rooms-cpu-batch16", ema_kimg=10.0, batch=16),
    # The twenty-first comparison (session 21): rooms-cpu with its objects painted from palettes of
    # three colours at 64 px (nets/palette.py), grown from a rooms-cpu state, against the
    # rooms-cpu lineage from the same state at equal images: realism 0.820 against 0.775 over
    # 16k images, the fills as rainbow (README): not adopted.
    "rooms-cpu-palette": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-palette",
                                             architecture="rooms-cpu-palette", **MOVE_CONSISTENCY),
    "rooms-cpu-stylegan2": TrainConfig("rooms-cpu-stylegan2", "rooms-cpu", "rooms", batch=8, align_weight=0.0,
                                       distortion_every=4, condition_d_on_layout=True, ema_kimg=1.0,
                                       sample_every=100, log_every=10, save_every_minutes=3.0),
    # Issue 23's candidate: rooms-cpu with the projected recipe, everything else the same.
    "rooms-cpu-projected": _ROOMS_CPU_PROJECTED,
    # The second pair (README, "Recipes"): the projected D without colour jitter, and today's
    # recipe with StyleGAN2-ADA's small-resolution settings (gamma = 0.0002 res^2 / batch,
    # EMA batch x 10/32 kimg with ramp-up 0.05, lazy R1 every 16; mapping depth stays 4:
    # the architecture is the shipped one's).
    "rooms-cpu-proj-shift": dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-shift",
                                                d_augment="translation"),
    # The third pair: the heads see the pixels beside the features (d_rgb_heads).
    "rooms-cpu-proj-rgb": dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-rgb",
                                              d_augment="translation", d_rgb_heads=True),
    # The fourth pair (session 10): the heads also see the batch's variety (d_mbstd).
    "rooms-cpu-proj-mbstd": dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-mbstd",
                                                d_augment="translation", d_rgb_heads=True, d_mbstd=True),
    # The fifth pair: the heads see the colour variety of the batch, with and without OASIS's
    # per-pixel classes on the projected features.
    "rooms-cpu-proj-variety": dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-variety",
                                                  d_augment="translation", d_rgb_heads=True, d_mbstd=True,
                                                  d_rgb_variety=True),
    "rooms-cpu-proj-segment": _ROOMS_CPU_SEGMENT,
    # The next to try (not run yet): every projected variant so far drifts to one wall colour,
    # the pixel D included; Projected GAN trains G and D at lr 0.0002, a tenth of ours.
    "rooms-cpu-proj-segment-lr": dataclasses.replace(_ROOMS_CPU_SEGMENT, name="rooms-cpu-proj-segment-lr",
                                                     lr=0.0002),
    # The sixth: a StyleGAN2 D on the pixels beside the projected heads.
    "rooms-cpu-proj-pixel": dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-pixel",
                                                d_augment="translation", d_rgb_heads=True, d_pixel=1.0),
    "rooms-cpu-proj-pixel-segment": dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-pixel-segment",
                                                        d_augment="translation", d_rgb_heads=True, d_pixel=1.0,
                                                        d_segment=1.0),
    "rooms-cpu-proj-colour": _ROOMS_CPU_COLOUR,
    # The ninth comparison (session 12), from the relay's 108k-image state: the colour recipe
    # moved one object and redrew the whole room (14 levels of change outside the two
    # footprints; the renderer: 1.8) and resampled blocks leaked (locality 3 levels). With move
    # consistency (it raised figures-cpu's tracked co-move 0.46 -> 0.73), and with it and the
    # block-distortion term ten times stronger (at 10 it adds ~0.001 beside a hinge of 1-2).
    "rooms-cpu-move": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-move", **MOVE_CONSISTENCY),
    "rooms-cpu-move-local": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-move-local",
                                                distortion_weight=100.0, **MOVE_CONSISTENCY),
    # The next candidate (not run yet): the 8 px offsets double a resampled block's leak
    # (README, the ninth comparison); the shipped default's 8 px fields score 0.020 on the
    # penalty, so weight 20 puts about 0.4 beside a hinge of 1-2.
    "rooms-cpu-offsets": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-offsets", offset_penalty=20.0,
                                             **MOVE_CONSISTENCY),
    # The tenth comparison (session 13): the shipped default's tracked co-move is 0.02 against a
    # ceiling of 0.70; move consistency at 10 raised it 0 -> 0.008 in 40 minutes. Three times
    # the weight, to see whether the term's strength is what holds it back.
    "rooms-cpu-move30": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-move30", move_weight=30.0,
                                            move_every=2),
    # The eleventh comparison (session 14): a moved object redraws the room because it enters
    # at 4 and 8 px, where a 3x3 convolution sees most of the picture (runs: moving it only
    # in the heatmaps from 16 px up leaves 2.8 levels of change outside its footprints, not
    # 12). The adopted recipe on the architecture whose objects enter from 16 px.
    "rooms-cpu-fine": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-fine", architecture="rooms-cpu-fine",
                                          **MOVE_CONSISTENCY),
    # ... and with its blocks from 8 px too: half of a resampled block's leak comes from its
    # 4 px style (runs: 5.5 levels outside it with blocks from 4 px, 3.0 from 8 px).
    "rooms-cpu-local": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-local", architecture="rooms-cpu-local",
                                           **MOVE_CONSISTENCY),
    # The twelfth comparison (session 15): on the new wiring a moved object arrives looking
    # different (its patch matches at the new place with a residual of 1.04 of its variance,
    # the renderer's 0.26): each object draws its own features in its own coordinates.
    "rooms-cpu-sprites": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-sprites",
                                             architecture="rooms-cpu-sprites", **MOVE_CONSISTENCY),
    # ... and the blocks from 16 px (the leak profile: a block resampled from 16 px up changes
    # 0.2 levels outside it, from 8 px 3.0).
    "rooms-cpu-blocks16": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-blocks16",
                                              architecture="rooms-cpu-blocks16", **MOVE_CONSISTENCY),
    # ... and inside an object its style replaces the blocks' (a moved object's patch still
    # matched its old look with a residual of 0.99 of its variance with sprites, 0.26 real).
    "rooms-cpu-own": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-own", architecture="rooms-cpu-own",
                                         **MOVE_CONSISTENCY),
    # The fourteenth comparison (session 16): a moved object went to its new place in 58 % of
    # tracked co-move's moves but looked the same in 44 % (models/tools/move_report.py): the
    # move-consistency term's "the same object arrived" weighed three times as much (the tenth
    # comparison's rooms-cpu-move30 on the own-style architecture). Not run yet: its arm
    # starved beside the relay and the test suite on 2 cores (session 16).
    "rooms-cpu-own-move30": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-own-move30",
                                                architecture="rooms-cpu-own", move_weight=30.0,
                                                move_every=MOVE_CONSISTENCY["move_every"]),
    # A candidate for the iridescent objects: the finest head sees the pixels, not 2x2 averages.
    "rooms-cpu-proj-detail": dataclasses.replace(_ROOMS_CPU_PROJECTED, name="rooms-cpu-proj-detail",
                                                 d_augment="translation", d_rgb_heads=True, d_mbstd=True,
                                                 d_rgb_detail=True),
    # The fifteenth comparison (session 18): rooms-cpu's objects are filled with iridescent
    # speckle; its finest head sees only 2x2 averages of the pixels, where a 2-px rainbow
    # averages to a plausible colour. Warm-started, its D grows from the relay's
    # (projected.grow_detail_inputs).
    "rooms-cpu-detail": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-detail",
                                            architecture="rooms-cpu-own", d_rgb_detail=True,
                                            **MOVE_CONSISTENCY),
    # ... and its other candidate: G's object patches must mix colours along one line, as a
    # distribution, as real objects' do (TrainConfig.chroma_match).
    "rooms-cpu-chroma": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-chroma",
                                            architecture="rooms-cpu-own", chroma_match=1000.0,
                                            **MOVE_CONSISTENCY),
    # ... and a tenth of the weight (the sixteenth comparison's arm, session 19).
    "rooms-cpu-chroma100": dataclasses.replace(_ROOMS_CPU_COLOUR, name="rooms-cpu-chroma100",
                                               architecture="rooms-cpu-own", chroma_match=100.0,
                                               **MOVE_CONSISTENCY),
    # figures-cpu with chroma_match (its patches drawn at the figure's parts): the figures'
    # torsos are iridescent too. Defined in session 18, not run yet.
    "figures-cpu-chroma": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-chroma", chroma_match=1000.0),
    "rooms-cpu-sg2ada": TrainConfig("rooms-cpu-sg2ada", "rooms-cpu", "rooms", batch=8, align_weight=0.0,
                                    distortion_every=4, condition_d_on_layout=True, ema_kimg=2.5,
                                    ema_rampup=0.05, r1_gamma=0.0002 * 64 ** 2 / 8, r1_every=16,
                                    sample_every=100, log_every=10, save_every_minutes=3.0),
    # The 128 px GPU figures on figures-cpu's recipe (session 17): a layout-conditional D in
    # place of the GradCAM alignment (figures-cpu's tracked co-move 0.80, the GPU figures' 0).
    # figures-no-mtm stays its equal-compute pair; figures-gradcam is the recipe before.
    # Since session 22 with limb_segment, as figures-cpu.
    # Since session 25 with limb_parts, as figures-cpu.
    "figures": TrainConfig("figures", "figures", "figures", align_weight=0.0, condition_d_on_layout=True,
                           limb_segment=LIMB_SEGMENT, limb_parts=True, **MOVE_CONSISTENCY),
    "figures-gradcam": TrainConfig("figures-gradcam", "figures", "figures", **MOVE_CONSISTENCY),
    # The CPU-trained figures model (issue 12's fallback while no GPU run has happened): 64 px,
    # set up like rooms-cpu, with the hierarchy read off the figures' skeletons as its layout;
    # since session 22 G's limbs are checked pixel by pixel by a frozen segmenter (limb_segment:
    # the twenty-second comparison); figures-cpu-nolimbs is the recipe before, kept so that the
    # comparison can be re-run. Since session 25 the segmenter tells the parts apart and G is
    # asked for each where its hierarchy fixes it (limb_parts: the twenty-fifth comparison);
    # figures-cpu-limbs is the recipe before.
    "figures-cpu": dataclasses.replace(_FIGURES_CPU, name="figures-cpu", limb_segment=LIMB_SEGMENT, limb_parts=True),
    "figures-cpu-limbs": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-limbs", limb_segment=LIMB_SEGMENT),
    # figures-cpu whose generator also takes the skeleton's bones (the nineteenth comparison,
    # session 20: no figures model drew arms); grows from a figures-cpu state.
    "figures-cpu-bones": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-bones", architecture="figures-cpu-bones"),
    # The twenty-third comparison (session 23): with limb_segment the figures draw arms, but
    # tracked co-move fell 0.88 -> 0.82 over the relay's last 90k images (the control without it
    # fell further, 0.76): move consistency at three times the weight, to see whether the term's
    # strength holds the moves while the arms grow (rooms: the tenth comparison, 0.008 -> 0.039).
    # Since session 25 with limb_parts, as figures-cpu (the parts arm's tracked co-move 0.75 vs 0.81).
    "figures-cpu-move30": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-move30",
                                              limb_segment=LIMB_SEGMENT, limb_parts=True, move_weight=30.0),
    # The twenty-fifth comparison's arm (session 25), adopted as figures-cpu.
    "figures-cpu-parts": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-parts",
                                             limb_segment=LIMB_SEGMENT, limb_parts=True),
    # ... and figures-cpu at half the learning rate (the twentieth comparison's rooms-cpu-halflr:
    # realism 0.754 against 0.793 and FD 0.022 against 0.035 at equal images): what keeps the
    # arms' state from shipping is its FD (0.013 against the shipped 0.0065) and its moves.
    "figures-cpu-halflr": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-halflr",
                                              limb_segment=LIMB_SEGMENT, lr=0.001),
    # figures-cpu before limb_segment (the twenty-second comparison's control).
    "figures-cpu-nolimbs": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-nolimbs"),
    # figures-cpu with the projected recipe of rooms-cpu (issue 23's figures comparison,
    # session 12: limbs sooner, but the moved figure found in 4 % of moves against 97 %: not
    # adopted; README, "Recipes").
    "figures-cpu-proj": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-proj",
                                            recipe="projected", d_augment="translation", d_rgb_heads=True,
                                            d_mbstd=True, d_rgb_variety=True, d_segment=1.0, colour_match=100.0),
    # Both (session 19): figures-cpu-proj's heads for the limbs and, as its pixel D, figures-cpu's
    # layout-conditional StyleGAN2 D for where the figure is (a warm start from a figures-cpu
    # state takes that state's D as the pixel D: gpu_worker.WarmTrainer.warm_start). The
    # seventeenth comparison: 16k images from the relay's state, realism and tracked level, FD
    # 17x the control's, no arms yet: not adopted.
    "figures-cpu-dual": dataclasses.replace(_FIGURES_CPU, name="figures-cpu-dual",
                                            recipe="projected", d_augment="translation", d_rgb_heads=True,
                                            d_mbstd=True, d_rgb_variety=True, d_segment=1.0, d_pixel=1.0,
                                            colour_match=100.0),
    "figures-no-mtm": TrainConfig("figures-no-mtm", "figures-no-mtm", "figures", align_weight=0.0, limb_parts=True,
                                  condition_d_on_layout=True, limb_segment=LIMB_SEGMENT, **MOVE_CONSISTENCY),
    # Video (StyleGAN-V): 3 frames per clip at random times, a holistic video D; objects, grid
    # and MTM on. Set up like rooms-cpu (layout-conditional D) so that it trains on a CPU too;
    # 4 clips = 12 frames a step, about twice the cost of a rooms-cpu step.
    # Since session 23 on rooms-cpu's projected recipe (issue 23: "adopt the winner ... clips
    # included"): the projected D with its per-pixel classes judges every frame, the video D
    # the clip (as the pixel D, d_pixel; nets/video_discriminator.ClipsProjectedDiscriminator).
    # With move consistency, as rooms-cpu (each frame one of its objects moved); colour_match
    # has no video step yet. clips-stylegan2 is the recipe before (the shipped clips model's).
    # Since session 24 told each object's kind, as rooms-cpu (clips-kinds, grown from clips-own).
    "clips": TrainConfig("clips", "clips-kinds", "clips-rooms", batch=4, align_weight=0.0, distortion_every=4,
                         condition_d_on_layout=True, ema_kimg=1.0, sample_every=100, log_every=10,
                         save_every_minutes=3.0, recipe="projected", d_augment="translation", d_rgb_heads=True,
                         d_mbstd=True, d_rgb_variety=True, d_segment=1.0, d_pixel=1.0, **MOVE_CONSISTENCY),
    "clips-stylegan2": TrainConfig("clips-stylegan2", "clips-own", "clips-rooms", batch=4, align_weight=0.0,
                                   distortion_every=4, condition_d_on_layout=True, ema_kimg=1.0, sample_every=100,
                                   log_every=10, save_every_minutes=3.0),
    # Tiny ones for tests: every loss term on, every step.
    "tiny-rooms": TrainConfig("tiny-rooms", "tiny-rooms", "rooms", batch=4, r1_every=2, align_every=1,
                              distortion_every=1, sample_every=2, log_every=1, ema_kimg=0.01),
    "tiny-rooms-layout": TrainConfig("tiny-rooms-layout", "tiny-rooms", "rooms", batch=4, r1_every=2,
                                     align_weight=0.0, distortion_every=1, sample_every=2, log_every=1,
                                     ema_kimg=0.01, condition_d_on_layout=True),
    "tiny-figures-layout": TrainConfig("tiny-figures-layout", "tiny-figures", "figures", batch=4, r1_every=2,
                                       align_weight=0.0, sample_every=2, log_every=1, ema_kimg=0.01,
                                       condition_d_on_layout=True),
    "tiny-rooms-projected": TrainConfig("tiny-rooms-projected", "tiny-rooms", "rooms", batch=4, align_weight=0.0,
                                        distortion_every=1, sample_every=2, log_every=1, ema_kimg=0.01,
                                        condition_d_on_layout=True, recipe="projected"),
    "tiny-rooms-kinds": TrainConfig("tiny-rooms-kinds", "tiny-rooms-kinds", "rooms", batch=4, align_weight=0.0,
                                    distortion_every=1, sample_every=2, log_every=1, ema_kimg=0.01,
                                    condition_d_on_layout=True, recipe="projected", d_segment=1.0),
    "tiny-figures": TrainConfig("tiny-figures", "tiny-figures", "figures", batch=4, r1_every=2, align_every=1,
                                distortion_every=1, sample_every=2, log_every=1, ema_kimg=0.01),
    "tiny-clips": TrainConfig("tiny-clips", "tiny-clips", "clips-rooms", batch=2, r1_every=2, align_every=1,
                              distortion_every=1, sample_every=2, log_every=1, ema_kimg=0.01),
    "tiny-clips-projected": TrainConfig("tiny-clips-projected", "tiny-clips", "clips-rooms", batch=2, r1_every=2,
                                        align_weight=0.0, distortion_every=1, sample_every=2, log_every=1,
                                        ema_kimg=0.01, condition_d_on_layout=True, recipe="projected",
                                        d_rgb_heads=True, d_mbstd=True, d_segment=1.0, d_pixel=1.0, move_weight=1.0,
                                        move_every=1),
}


def training_config(name_or_path: str) -> TrainConfig:
    if name_or_path in TRAINING_CONFIGS:
        return TRAINING_CONFIGS[name_or_path]
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        # A FIFO would block, deep nesting or 5,000-digit numbers raise deep inside json, and
        # values of the wrong kind fail in the dataclass: each is one ConfigError naming the file.
        try:
            data = parse_json(read_regular(p, MAX_CONFIG_BYTES), "its JSON")
        except FileProblem as exc:
            raise ConfigError(f"{p}: {'no such training config file' if exc.problem == 'no such file' else exc.problem}"
                              ) from None
        except SafetensorsProblem as exc:
            raise ConfigError(f"{p}: not a valid training config: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: a training config must be a JSON object")
        try:
            return TrainConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{p}: not a valid training config ({type(exc).__name__}: {str(exc)[:200]})") from None
    raise ConfigError(f"unknown training config {name_or_path!r}; known: {sorted(TRAINING_CONFIGS)} or a .json file")


# ---- the GPU run (models/training/gpu_run.py) -------------------------------------------
# The models it trains, each in its own process on the one GPU. Two pairs are experiments at
# equal compute (identical settings but one, the same wall-clock budget, trained side by side
# from the first run on): figures / figures-no-mtm (the MTM ablation) and rooms /
# rooms-no-move (the control for the move-consistency term of issue #14, which won on the CPU
# and is on in rooms: does it still pay at 128 px on a GPU?).
# And the relay's 64 px default (`rooms-cpu`), continued from its relay state
# (checkpoints/relay/): a GPU trains it about 18x faster than the CPU relay (session 16), and it
# is the model the studio opens. Only its state comes back; the relay's finish measures it
# here and ships it through the gate (RELAY_ON_GPU). `figures-cpu` likewise (session 17): its
# targets need far more images than the CPU gives it; with no relay state yet it continues
# its shipped checkpoint with a new D.
# Six at most: each brings back a state, and with the bundle and the summary that is the eight
# files a GPU machine returns. `rooms-no-move` gave its place to `figures-cpu` (session 17: the
# control of an old-recipe 128 px model matters less than the targets of issue 23); it stays
# in GPU_CONFIGS, `gpu_run --models` trains it.
GPU_RUN_MODELS = ("rooms", "figures", "figures-no-mtm", "clips", "rooms-cpu", "figures-cpu")
RELAY_ON_GPU = ("rooms-cpu", "figures-cpu")


class _Cadence(TypedDict):
    """TrainConfig fields that a whole run's configs share (dataclasses.replace keywords)."""
    sample_every: int
    log_every: int
    save_every_minutes: float


class _SmokeSettings(_Cadence):
    batch: int


# Batch sizes for an H100/H200: five small models share it, so each keeps a moderate batch
# (Python and kernel-launch overhead per step dominates at small batches; R1 and the GradCAM
# double backward dominate at large ones). EMA half-life in thousands of images, scaled to
# the batch as StyleGAN2 does (10 kimg at batch 32 and up).
_GPU = _Cadence(sample_every=2000, log_every=50, save_every_minutes=2.0)
GPU_CONFIGS: dict[str, TrainConfig] = {
    "rooms": dataclasses.replace(TRAINING_CONFIGS["rooms"], batch=64, ema_kimg=10.0, real_chunk=8, **_GPU),
    "rooms-no-move": dataclasses.replace(TRAINING_CONFIGS["rooms"], name="rooms-no-move", batch=64, ema_kimg=10.0,
                                         real_chunk=8, move_weight=0.0, **_GPU),
    "figures": dataclasses.replace(TRAINING_CONFIGS["figures"], batch=64, ema_kimg=10.0, real_chunk=8, **_GPU),
    "figures-no-mtm": dataclasses.replace(TRAINING_CONFIGS["figures-no-mtm"], batch=64, ema_kimg=10.0,
                                          real_chunk=8, **_GPU),
    # 16 clips = 48 frames of 64 px a step.
    "clips": dataclasses.replace(TRAINING_CONFIGS["clips"], batch=16, ema_kimg=2.5, **_GPU),
}


def gpu_relay_config(cfg: TrainConfig, batch: int = 32) -> TrainConfig:
    """A relay model's config on a GPU: at the CPU's batch of 8 a GPU step is all overhead;
    32 uses the GPU and keeps the step close to the CPU recipe's. The EMA's half-life in
    images grows with the rate. Everything else is the relay's, so the state continues as its own."""
    return dataclasses.replace(cfg, batch=batch, ema_kimg=max(cfg.ema_kimg, 2.5), sample_every=2000, log_every=50,
                               save_every_minutes=1.0)


GPU_CONFIGS.update({name: gpu_relay_config(TRAINING_CONFIGS[name]) for name in RELAY_ON_GPU})
# The CPU smoke run of the same command: tiny networks under the same names, so that every
# path (processes, warm start, packing, the way back) runs in about a minute on 2 cores.
_SMOKE = _SmokeSettings(batch=2, sample_every=1000, log_every=2, save_every_minutes=0.1)
SMOKE_CONFIGS: dict[str, TrainConfig] = {
    # The 128 px models: their GPU configs themselves on tiny networks (every part of their D
    # runs in the smoke; R1 every other step). Without colour_match: its bank of 2,048 real
    # renders took 20-40 s of a 40 s smoke on 2 cores (tests/test_colour_match.py tests it).
    "rooms": dataclasses.replace(GPU_CONFIGS["rooms"], architecture="tiny-rooms-kinds", ema_kimg=0.01, real_chunk=2,
                                 colour_match=0.0, **_SMOKE),
    "rooms-no-move": dataclasses.replace(GPU_CONFIGS["rooms-no-move"], architecture="tiny-rooms-kinds",
                                         ema_kimg=0.01, real_chunk=2, colour_match=0.0, **_SMOKE),
    "figures": dataclasses.replace(GPU_CONFIGS["figures"], architecture="tiny-figures", ema_kimg=0.01, r1_every=2,
                                   real_chunk=2, **_SMOKE),
    "figures-no-mtm": dataclasses.replace(GPU_CONFIGS["figures-no-mtm"], architecture="tiny-figures-no-mtm",
                                          ema_kimg=0.01, r1_every=2, real_chunk=2, **_SMOKE),
    "clips": dataclasses.replace(TRAINING_CONFIGS["tiny-clips-projected"], name="clips",
                                 architecture="tiny-clips-kinds", **MOVE_CONSISTENCY, **_SMOKE),
    # (not told kinds, unlike rooms-cpu: the smoke's rooms model is; two architectures let the
    # way back's test tell a rooms state posing as rooms-cpu by its architecture)
    "rooms-cpu": dataclasses.replace(TRAINING_CONFIGS["tiny-rooms-projected"], name="rooms-cpu", **_SMOKE),
    "figures-cpu": dataclasses.replace(TRAINING_CONFIGS["tiny-figures-layout"], name="figures-cpu",
                                       limb_segment=LIMB_SEGMENT, limb_parts=True, **MOVE_CONSISTENCY, **_SMOKE),
}
