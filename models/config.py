"""Generator configuration: one architecture family, capabilities switched on by config.

A config is plain data (JSON-able) so that a checkpoint can carry it and the app can
decide which panels to show from it without building a network.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

POWERS_OF_TWO = (8, 16, 32, 64, 128, 256, 512)
HIERARCHY_LEVELS = (4, 8, 16)  # heatmap resolutions of the single-object setting
HIERARCHY_CENTERS = (1, 2, 4)  # centers per level; finer ones sampled around coarser ones
# Where new scenes and sampled latents put a hierarchical generator's 1-2-4 centers.
# "free": the SpatialGAN prior (finer centers anywhere around their parent).
# "skeleton": laid out like a person, for generators trained on figure skeletons
# (figures-cpu: models/data/figures.skeleton_hierarchy). Means and standard deviations of
# those hierarchies' offsets over 20,000 sampled figures (seed 0; tests/test_data.py
# re-measures them): level 1 the head-and-shoulders and the knees relative to the torso
# centre, level 2 the two hands relative to the former and the two feet to the latter.
LAYOUT_PRIORS = ("free", "skeleton")
# The rooms' object kinds, in the renderer's order (models/data/rooms.KINDS is this): the
# names a generator told an object's kind knows them by.
ROOM_KINDS = ("bed", "window", "painting", "lamp", "plant", "rug")
SKELETON_OFFSETS1 = (((0.0, -0.111), (0.040, 0.017)), ((0.0, 0.225), (0.091, 0.042)))  # ((mean), (std)) per center
SKELETON_OFFSETS2 = (((-0.055, 0.019), (0.095, 0.141)), ((0.055, 0.019), (0.094, 0.141)),
                     ((0.022, 0.085), (0.110, 0.072)), ((-0.022, 0.085), (0.109, 0.072)))
# The `time` capability (StyleGAN-V, models/nets/motion.py): its keys and their defaults. A config
# stores all of them once filled in, so a checkpoint does not change if a default does.
TIME_DEFAULTS: dict[str, int] = {
    "motion_every": 16,  # one motion code every K frames at base_fps (StyleGAN-V's time grid)
    "base_fps": 25,
    "motion_dim": 32,  # size of one motion code
    "kernel": 5,  # neighbouring codes smoothed into one (odd): a 1D conv over the code sequence
    "hidden": 64,  # size of a smoothed motion code
    "waves": 32,  # sinusoids of the acyclic positional time embedding
    "channels": 16,  # time feature maps concatenated to the 4x4 constant input
}


# Upper bounds, so that a config read from a file cannot ask for more than any real model
# needs (a 15 KB file once asked for 12,000 channels and took 12 GB before failing).
MAX_CHANNELS = 1024
MAX_DIM = 1024  # z_dim, w_dim
MAX_MAPPING_LAYERS = 16
MAX_KINDS = 16  # object_kinds
TIME_MAX: dict[str, int] = {"motion_every": 1024, "base_fps": 240, "motion_dim": 1024, "kernel": 31,
                            "hidden": 1024, "waves": 1024, "channels": 1024}


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


@dataclass(frozen=True)
class GeneratorConfig:
    resolution: int = 128
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    # Channels per synthesis resolution: {4: c, 8: c, ..., resolution: c}; keys as str in JSON.
    channels: dict[int, int] = field(default_factory=dict)
    objects: int = 0  # n sub-heatmaps with one style each (SEL_indoor); 0 = off
    hierarchical: bool = False  # 4/8/16 heatmaps with 1/2/4 centers (SEL_norm)
    grid: int = 0  # g: background latent split in g x g blocks (SSN); 0 = off
    mtm: tuple[int, ...] = ()  # resolutions whose convolutions are MTM (deformable)
    time: dict[str, Any] | None = None  # video (StyleGAN-V): None = off, else keys of TIME_DEFAULTS
    style_res: int = 32  # the style field is computed at most at this size, then upsampled
    noise: bool = True
    layout_prior: str = "free"  # hierarchical: where new centers go (LAYOUT_PRIORS)
    # Objects enter the synthesis (their styles in the style field, their heat bias) from this
    # resolution up; coarser layers draw the room from the background style alone. At 4 and
    # 8 px a 3x3 convolution sees most of the picture, so an object that enters there redraws
    # the room when it moves (README, the eleventh comparison: 12 levels of change outside the
    # moved object's footprints with objects from 4 px, 2.8 with them from 16 px).
    objects_from: int = 4
    # The grid's block styles likewise enter from this resolution up; coarser layers take the
    # global style (z_global) instead. At 4 px a block is one pixel and the 3x3 convolution
    # carries it into its neighbours: half of a resampled block's change outside it (README,
    # the eleventh comparison).
    blocks_from: int = 4
    # Each object also draws its own features in its own coordinates, as waves under its
    # Gaussian with coefficients read off its style (nets/sprites.py): this many basis
    # functions; 0 = off. A radially symmetric bump took its looks from the features already
    # at its place, so a moved object arrived looking different (session 15).
    object_sprites: int = 0
    # Inside an object its style replaces the background's (the blocks') instead of adding to
    # it, so that what it looks like does not depend on the block it stands on: a moved
    # object arrived in another block and looked different (session 15). Same weights.
    objects_own_style: bool = False
    # Hierarchical: the skeleton's bones (thin capsules from each center to its parent: the
    # spine, thighs and shins, and the arms from the upper body to the hands) enter as a
    # learned per-channel bias from this resolution up; 0 = off. The 1-2-4 Gaussians say where
    # the hands are but not that an arm joins them to the body; a figure's limbs are 1-2 px
    # lines at 64 px, and no figures model drew arms (session 20).
    bones_from: int = 0
    # Inside an object the finest level paints with this many colours of the object's own,
    # mixed per pixel, under a brightness, by a learned gate (nets/palette.py); 0 = off. The
    # 64 px level filled objects with hue that changes from pixel to pixel (session 21).
    object_palette: int = 0
    # The kinds of object G is told, by name (rooms: "bed", "window", ...); () = not told.
    # Each object's style then gains its kind's learned vector (zero at first, so a state
    # without kinds starts drawing what it drew), the studio lets the user choose an object's
    # kind, and training asks the per-pixel D for that kind where the layout puts the object.
    # Without it the layout named no kind and G was rewarded for "any object": it drew one
    # framed rectangle for every kind (session 24).
    object_kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.resolution not in POWERS_OF_TWO:  # before default_channels loops up to it
            raise ConfigError(f"resolution must be one of {POWERS_OF_TWO}, got {short_repr(self.resolution)}")
        chans = {int(k): int(v) for k, v in (self.channels or {}).items()}
        if not chans:
            chans = default_channels(self.resolution)
        object.__setattr__(self, "channels", chans)
        object.__setattr__(self, "mtm", tuple(int(r) for r in self.mtm))
        object.__setattr__(self, "object_kinds", tuple(self.object_kinds))
        if self.time is not None:
            if not isinstance(self.time, dict):
                raise ConfigError(f"time must be null or an object, got {self.time!r}")
            object.__setattr__(self, "time", {**TIME_DEFAULTS, **self.time})
        self.validate()

    # ---- validation ---------------------------------------------------------------
    def validate(self) -> None:
        if self.resolution not in POWERS_OF_TWO:
            raise ConfigError(f"resolution must be one of {POWERS_OF_TWO}, got {short_repr(self.resolution)}")
        needed = self.resolutions()
        missing = [r for r in needed if r not in self.channels]
        if missing:
            raise ConfigError(f"channels has no entry for resolutions {missing}")
        extra = sorted(r for r in self.channels if r not in needed)
        if extra:
            raise ConfigError(f"channels has entries for {short_repr(extra)}, which are not synthesis resolutions"
                              f" {needed}")
        for r, c in self.channels.items():
            if not 1 <= c <= MAX_CHANNELS:
                raise ConfigError(f"channels[{r}] must be between 1 and {MAX_CHANNELS}, got {short_repr(c)}")
        for name, top in (("z_dim", MAX_DIM), ("w_dim", MAX_DIM), ("mapping_layers", MAX_MAPPING_LAYERS)):
            if not 1 <= getattr(self, name) <= top:
                raise ConfigError(f"{name} must be between 1 and {top}, got {short_repr(getattr(self, name))}")
        if not 0 <= self.objects <= 16:
            raise ConfigError(f"objects must be between 0 and 16, got {short_repr(self.objects)}")
        if self.objects and self.hierarchical:
            raise ConfigError("objects and hierarchical are exclusive:"
                              " pick the multi-object or the single-object setting")
        if self.hierarchical and self.resolution < 16:
            raise ConfigError("hierarchical needs a resolution of at least 16")
        if not 0 <= self.grid <= 16:
            raise ConfigError(f"grid must be between 0 and 16 blocks per side, got {short_repr(self.grid)}")
        bad = [r for r in self.mtm if r not in needed or r < 8]
        if bad:
            raise ConfigError(f"mtm resolutions {short_repr(bad)} are not synthesis resolutions (8..{self.resolution})")
        if len(set(self.mtm)) != len(self.mtm):
            raise ConfigError(f"mtm lists a resolution twice: {list(self.mtm)}")
        if self.style_res not in POWERS_OF_TWO:
            raise ConfigError(f"style_res must be one of {POWERS_OF_TWO}, got {short_repr(self.style_res)}")
        if self.time is not None:
            _validate_time(self.time)
        for name in ("objects_from", "blocks_from"):
            if getattr(self, name) not in needed:
                raise ConfigError(f"{name} must be a synthesis resolution {needed},"
                                  f" got {short_repr(getattr(self, name))}")
        if not 0 <= self.object_sprites <= 64:
            raise ConfigError(f"object_sprites must be between 0 (off) and 64 basis functions,"
                              f" got {short_repr(self.object_sprites)}")
        if self.bones_from and (self.bones_from not in needed or self.bones_from < 8):
            raise ConfigError(f"bones_from must be 0 (off) or a synthesis resolution from 8 {needed[1:]},"
                              f" got {short_repr(self.bones_from)}")
        if self.bones_from and not self.hierarchical:
            raise ConfigError("bones_from needs hierarchical heatmaps (the bones join their centers)")
        if self.objects_own_style and not self.objects:
            raise ConfigError("objects_own_style needs objects")
        if not 0 <= self.object_palette <= 8:
            raise ConfigError(f"object_palette must be between 0 (off) and 8 colours,"
                              f" got {short_repr(self.object_palette)}")
        if self.object_palette and not self.objects:
            raise ConfigError("object_palette needs objects (each paints with its own colours)")
        if self.object_sprites and not self.objects:
            raise ConfigError("object_sprites needs objects (they are drawn at the objects' centers)")
        if self.object_kinds and not self.objects:
            raise ConfigError("object_kinds needs objects (a kind is an object's)")
        if len(self.object_kinds) > MAX_KINDS or len(set(self.object_kinds)) != len(self.object_kinds) or not all(
                isinstance(k, str) and 0 < len(k) <= 32 for k in self.object_kinds):
            raise ConfigError(f"object_kinds must be at most {MAX_KINDS} different names of 1-32 characters,"
                              f" got {short_repr(self.object_kinds)}")
        if self.layout_prior not in LAYOUT_PRIORS:
            raise ConfigError(f"layout_prior must be one of {LAYOUT_PRIORS}, got {short_repr(self.layout_prior)}")
        if self.layout_prior != "free" and not self.hierarchical:
            raise ConfigError(f"layout_prior {self.layout_prior!r} is for hierarchical generators")

    def resolutions(self) -> list[int]:
        r, out = 4, []
        while r <= self.resolution:
            out.append(r)
            r *= 2
        return out

    # ---- capabilities, for the app --------------------------------------------------
    def capabilities(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "hierarchical": self.hierarchical,
            "grid": self.grid,
            "mtm": list(self.mtm),
            "time": self.time is not None,
            "kinds": list(self.object_kinds),
        }

    # ---- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = {str(k): v for k, v in sorted(self.channels.items())}
        d["mtm"] = list(self.mtm)
        d["object_kinds"] = list(self.object_kinds)
        return d

    @classmethod
    def from_dict(cls, data: Any) -> GeneratorConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a generator config must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown generator config keys: {short_repr(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            kwargs[name] = _check_type(name, value)
        return cls(**kwargs)


def _check_type(name: str, value: Any) -> Any:
    ints = {"resolution", "z_dim", "w_dim", "mapping_layers", "objects", "grid", "style_res", "objects_from",
            "blocks_from", "object_sprites", "bones_from", "object_palette"}
    if name in ints:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {short_repr(value)}")
    elif name in ("hierarchical", "noise", "objects_own_style"):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {short_repr(value)}")
    elif name == "channels":
        if not isinstance(value, dict) or len(value) > len(POWERS_OF_TWO) + 2:
            raise ConfigError(f"channels must be an object {{resolution: channels}}, got {short_repr(value)}")
        out = {}
        for k, v in value.items():
            key = k if isinstance(k, int) and not isinstance(k, bool) else None
            if isinstance(k, str) and k.isdigit() and len(k) <= 4:
                key = int(k)
            if key is None or isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"channels must map resolutions to integers, got {short_repr(k)}: {short_repr(v)}")
            out[key] = v
        return out
    elif name == "mtm":
        if (not isinstance(value, (list, tuple)) or len(value) > len(POWERS_OF_TWO)
                or not all(isinstance(r, int) and not isinstance(r, bool) for r in value)):
            raise ConfigError(f"mtm must be a list of resolutions, got {short_repr(value)}")
        return tuple(value)
    elif name == "object_kinds":
        if not isinstance(value, (list, tuple)) or len(value) > MAX_KINDS or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"object_kinds must be a list of names, got {short_repr(value)}")
        return tuple(value)
    elif name == "layout_prior":
        if not isinstance(value, str):
            raise ConfigError(f"layout_prior must be a string, got {short_repr(value)}")
    elif name == "time":
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"time must be null or an object, got {short_repr(value)}")
    return value


def short_repr(value: Any, limit: int = 60) -> str:
    """repr(value), cut: an error message about a hostile value must stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _validate_time(time: dict[str, Any]) -> None:
    unknown = sorted(set(time) - set(TIME_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown time keys {short_repr(unknown)}; known: {sorted(TIME_DEFAULTS)}")
    for key, value in time.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= TIME_MAX[key]:
            raise ConfigError(f"time.{key} must be an integer from 1 to {TIME_MAX[key]}, got {short_repr(value)}")
    if time["kernel"] % 2 == 0:
        raise ConfigError(f"time.kernel must be odd (centred on a code), got {time['kernel']}")


def default_channels(resolution: int, base: int = 128, floor: int = 16) -> dict[int, int]:
    """Channel counts that keep the FLOPs per resolution roughly constant (halve per octave)."""
    out, r, c = {}, 4, base
    while r <= resolution:
        out[r] = c
        if r >= 16:
            c = max(floor, c // 2)
        r *= 2
    return out


# The shipped architectures. Kept small on purpose: the studio's budget is one frame in
# ~60 ms on a 2-core CPU, so the default scene model must run there interactively.
ARCHITECTURES: dict[str, GeneratorConfig] = {
    "rooms": GeneratorConfig(resolution=128, objects=3, grid=4, mtm=(8, 16)),
    # rooms with its objects from 16 px and its blocks from 8 px (the eleventh comparison,
    # adopted: an edit no longer redraws the room); the same weights as rooms.
    "rooms-local": GeneratorConfig(resolution=128, objects=3, grid=4, mtm=(8, 16), objects_from=16, blocks_from=8),
    # ... and with object sprites (nets/sprites.py; rooms-local's weights and more).
    "rooms-sprites": GeneratorConfig(resolution=128, objects=3, grid=4, mtm=(8, 16), objects_from=16, blocks_from=8,
                                     object_sprites=16),
    # ... with blocks from 16 px and each object's own style in place of the blocks' (the
    # thirteenth comparison, adopted; rooms-sprites' weights).
    "rooms-own": GeneratorConfig(resolution=128, objects=3, grid=4, mtm=(8, 16), objects_from=16, blocks_from=16,
                                 object_sprites=16, objects_own_style=True),
    # ... and told each object's kind (object_kinds, session 24; rooms-own's weights and more).
    "rooms-kinds": GeneratorConfig(resolution=128, objects=3, grid=4, mtm=(8, 16), objects_from=16, blocks_from=16,
                                   object_sprites=16, objects_own_style=True, object_kinds=ROOM_KINDS),
    "figures": GeneratorConfig(resolution=128, hierarchical=True, mtm=(8, 16, 32)),
    "figures-no-mtm": GeneratorConfig(resolution=128, hierarchical=True, mtm=()),
    "rooms-64": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16)),
    # The CPU-trainable default: a quarter of rooms-64's FLOPs, so an hour on 2 cores is enough.
    "rooms-cpu": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16),
                                 channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # rooms-cpu with its objects entering from 16 px (objects_from): the same weights, so a
    # rooms-cpu state warm-starts it (gpu_worker.WarmTrainer.warm_start).
    "rooms-cpu-fine": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                      channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # ... and its blocks from 8 px (blocks_from), the 4 px layer drawing from the global style.
    "rooms-cpu-local": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                       blocks_from=8, channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # ... and its objects drawing their own features in their own coordinates (object_sprites,
    # session 15): rooms-cpu-local's weights and more, the new ones starting at zero, so a
    # rooms-cpu-local state warm-starts it and draws what it drew.
    "rooms-cpu-sprites": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                         blocks_from=8, object_sprites=16,
                                         channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # ... and its blocks from 16 px too: a block's style then misses the 8 px MTM layer, whose
    # offsets carry it into its neighbours (block locality 3.7 levels, 9.9 with offsets off).
    "rooms-cpu-blocks16": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                          blocks_from=16, object_sprites=16,
                                          channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # ... and inside an object its style replaces the blocks' (objects_own_style).
    "rooms-cpu-own": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                     blocks_from=16, object_sprites=16, objects_own_style=True,
                                     channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # ... and twice the channels at 64 px, where the objects are drawn (session 20: the 32 px
    # image holds hardly a trace of them); a rooms-cpu-own state starts it drawing the same
    # pictures (nets/widen.py).
    "rooms-cpu-wide": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                      blocks_from=16, object_sprites=16, objects_own_style=True,
                                      channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 48}),
    # ... and its objects painting with palettes of three colours at 64 px (object_palette,
    # session 21): rooms-cpu-own's weights and a palette whose strength starts at zero, so a
    # rooms-cpu-own state starts it drawing the same pictures.
    "rooms-cpu-palette": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                         blocks_from=16, object_sprites=16, objects_own_style=True, object_palette=3,
                                         channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # ... and told each object's kind (object_kinds, session 24): rooms-cpu-own's weights and a
    # zero vector per kind, so a rooms-cpu-own state starts it drawing the same pictures.
    "rooms-cpu-kinds": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), objects_from=16,
                                       blocks_from=16, object_sprites=16, objects_own_style=True,
                                       object_kinds=ROOM_KINDS, channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # The CPU-trainable figures model: rooms-cpu's channels, MTM at 8, 16 and 32 px as in figures.
    "figures-cpu": GeneratorConfig(resolution=64, hierarchical=True, mtm=(8, 16, 32),
                                   channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}, layout_prior="skeleton"),
    # ... and its bones from 16 px (bones_from): figures-cpu's weights and a zero bias per
    # channel, so a figures-cpu state starts it drawing what it drew.
    "figures-cpu-bones": GeneratorConfig(resolution=64, hierarchical=True, mtm=(8, 16, 32),
                                         channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}, layout_prior="skeleton",
                                         bones_from=16),
    # Tiny ones for tests: every capability, a few thousand parameters, milliseconds a frame.
    "tiny-rooms": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                  channels={4: 16, 8: 16, 16: 8, 32: 8}, objects=2, grid=2, mtm=(8,), style_res=16),
    "tiny-figures": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                    channels={4: 16, 8: 16, 16: 8, 32: 8}, hierarchical=True, mtm=(8, 16),
                                    style_res=16),
    "tiny-figures-no-mtm": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                           channels={4: 16, 8: 16, 16: 8, 32: 8}, hierarchical=True, style_res=16),
    # Video: rooms-cpu with the time capability, trainable on a CPU (the `clips` training config).
    "clips": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), time={},
                             channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    "clips-local": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), time={}, objects_from=16,
                                   blocks_from=8, channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    "clips-sprites": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), time={}, objects_from=16,
                                     blocks_from=8, object_sprites=16,
                                     channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    "clips-own": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), time={}, objects_from=16,
                                 blocks_from=16, object_sprites=16, objects_own_style=True,
                                 channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    # ... and told each object's kind (object_kinds, session 24; clips-own's weights and more).
    "clips-kinds": GeneratorConfig(resolution=64, objects=3, grid=4, mtm=(8, 16), time={}, objects_from=16,
                                   blocks_from=16, object_sprites=16, objects_own_style=True, object_kinds=ROOM_KINDS,
                                   channels={4: 96, 8: 96, 16: 64, 32: 48, 64: 24}),
    "tiny-clips": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                  channels={4: 16, 8: 16, 16: 8, 32: 8}, objects=2, grid=2, mtm=(8,), style_res=16,
                                  time={"motion_every": 8, "motion_dim": 8, "kernel": 3, "hidden": 16, "waves": 8,
                                        "channels": 8}),
    "tiny-clips-kinds": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                        channels={4: 16, 8: 16, 16: 8, 32: 8}, objects=2, grid=2, mtm=(8,),
                                        style_res=16, object_kinds=ROOM_KINDS,
                                        time={"motion_every": 8, "motion_dim": 8, "kernel": 3, "hidden": 16,
                                              "waves": 8, "channels": 8}),
    # tiny-rooms wired like rooms-local (for the GPU run's smoke test).
    "tiny-rooms-local": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                        channels={4: 16, 8: 16, 16: 8, 32: 8}, objects=2, grid=2, mtm=(8,),
                                        style_res=16, objects_from=16, blocks_from=8),
    "tiny-rooms-sprites": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                          channels={4: 16, 8: 16, 16: 8, 32: 8}, objects=2, grid=2, mtm=(8,),
                                          style_res=16, objects_from=16, blocks_from=8, object_sprites=6),
    "tiny-rooms-own": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                      channels={4: 16, 8: 16, 16: 8, 32: 8}, objects=2, grid=2, mtm=(8,),
                                      style_res=16, objects_from=16, blocks_from=16, object_sprites=6,
                                      objects_own_style=True),
    "tiny-rooms-kinds": GeneratorConfig(resolution=32, z_dim=16, w_dim=16, mapping_layers=2,
                                        channels={4: 16, 8: 16, 16: 8, 32: 8}, objects=2, grid=2, mtm=(8,),
                                        style_res=16, objects_from=16, blocks_from=16, object_sprites=6,
                                        objects_own_style=True, object_kinds=ROOM_KINDS),
    "tiny-plain": GeneratorConfig(resolution=16, z_dim=16, w_dim=16, mapping_layers=2,
                                  channels={4: 16, 8: 8, 16: 8}, style_res=16),
}
DEFAULT_ARCHITECTURE = "rooms"


def architecture(name: str) -> GeneratorConfig:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ConfigError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}") from None
