"""SceneState: the immutable document. Everything that decides the image, nothing else.

Undo stores states, a session file is a state, the CLI renders a state, tests assert on
states. Random parts are stored as seeds (not tensors), so a state is small, JSON-able and
reproducible on any machine: same state + same checkpoint = same pixels.

Coordinates are normalised image units ((0, 0) top-left, (1, 1) bottom-right); sigma is
a fraction of the image side (0 removes the object).
"""
from __future__ import annotations

import math
import operator
import random
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from models.config import HIERARCHY_CENTERS, SKELETON_OFFSETS1, SKELETON_OFFSETS2, GeneratorConfig

SEED_LIMIT = 2**31  # seeds are in [0, SEED_LIMIT)
MAX_SIGMA = 1.0
MAX_STRENGTH = 2.0
# The sigmas training draws and a new scene starts with (the generator's sample_latents
# uses these too, so a fresh scene looks like what the model was trained on).
DEFAULT_OBJECT_SIGMA = 0.12
DEFAULT_ROOT_SIGMA = 0.2  # level 0 of the single-object (hierarchical) setting


# A frame's time is at most this many seconds (about 32 years): far beyond any video, and
# small enough that a time plus a frame's step is still a distinct float.
MAX_TIME = 1e9


class SceneError(ValueError):
    """A scene value is invalid, or the scene does not fit the generator."""


Point = tuple[float, float]


POINT_RANGE = (-1.0, 2.0)  # a center's or an offset's coordinates, image units


def _offset(center: Point, parent: Point) -> Point:
    """`center` relative to `parent`, clamped into POINT_RANGE: a child dragged far from its
    parent (the root near one edge, the child to the other) stops at the limit rather than
    making a scene that fails its own check."""
    lo, hi = POINT_RANGE
    return (min(max(center[0] - parent[0], lo), hi), min(max(center[1] - parent[1], lo), hi))


def _point(value: Any, what: str) -> Point:
    try:
        if isinstance(value, (str, bytes)):  # "12" unpacks into two digits: not a pair of numbers
            raise TypeError
        x, y = value
        if isinstance(x, (bool, str, bytes)) or isinstance(y, (bool, str, bytes)):
            raise TypeError
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise SceneError(f"{what} must be a pair of numbers (x, y), got {value!r}") from None
    lo, hi = POINT_RANGE
    if not (math.isfinite(x) and math.isfinite(y)) or not (lo <= x <= hi and lo <= y <= hi):
        raise SceneError(f"{what} must be finite and within [-1, 2] image units, got {value!r}")
    return (x, y)


def _seed(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise SceneError(f"{what} must be an integer in [0, 2^31), got {value!r}")
    return value


def _index(value: Any, count: int, what: str) -> int:
    """An index into `count` things: an integer in [0, count) (no negative index from the end)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)  # an int, or a numpy integer
    except TypeError:
        raise SceneError(f"{what} index must be an integer, got {value!r}") from None
    if not 0 <= value < count:
        where = "none" if not count else "0" if count == 1 else f"0..{count - 1}"
        raise SceneError(f"{what} index {value} is outside the {count} there are (valid: {where})")
    return value


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise SceneError(f"{what} must be true or false, got {value!r}")
    return value


def _number(value: Any, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SceneError(f"{what} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise SceneError(f"{what} must be within [{lo}, {hi}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ObjectState:
    center: Point
    sigma: float = DEFAULT_OBJECT_SIGMA
    style_seed: int = 0
    visible: bool = True
    locked: bool = False  # a locked object keeps its place and style on "new sample"
    # What the object is, by name (GeneratorConfig.object_kinds: "bed", "window", ...), for a
    # generator told kinds; None: not said (a generator without kinds, or an older scene).
    kind: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and not (isinstance(self.kind, str) and 0 < len(self.kind) <= 32):
            raise SceneError(f"object kind must be null or a name of 1-32 characters, got {self.kind!r:.80}")
        object.__setattr__(self, "center", _point(self.center, "object center"))
        object.__setattr__(self, "sigma", _number(self.sigma, "object sigma", 0.0, MAX_SIGMA))
        _seed(self.style_seed, "object style_seed")
        # Checked here, not only when a file is read: an edit must not make a scene that saves
        # but cannot be opened again.
        _flag(self.visible, "object visible")
        _flag(self.locked, "object locked")

    @property
    def effective_sigma(self) -> float:
        return self.sigma if self.visible else 0.0


@dataclass(frozen=True)
class Hierarchy:
    """Finer centers of the single-object setting, relative to their parent center."""

    offsets1: tuple[Point, ...]  # 2 level-1 centers, relative to the root
    offsets2: tuple[Point, ...]  # 4 level-2 centers, relative to level-1 center k // 2

    def __post_init__(self) -> None:
        for name, n in (("offsets1", HIERARCHY_CENTERS[1]), ("offsets2", HIERARCHY_CENTERS[2])):
            pts = getattr(self, name)
            if not isinstance(pts, (list, tuple)) or len(pts) != n:
                raise SceneError(f"hierarchy {name} must hold {n} (dx, dy) pairs, got {pts!r}")
            object.__setattr__(self, name, tuple(_point(p, f"hierarchy {name}") for p in pts))


@dataclass(frozen=True)
class SceneState:
    seed: int = 0  # the sample: "new sample" draws everything unlocked from it
    truncation: float = 1.0
    objects: tuple[ObjectState, ...] = ()
    hierarchy: Hierarchy | None = None  # single-object setting: objects[0] is the root
    block_seeds: tuple[int, ...] = ()
    background_seed: int = 0  # the global style when there is no block grid
    offsets_on: bool = True
    offset_strength: float = 1.0
    # Video (generators with the time capability; others ignore both): the frame's time in
    # seconds, and the seed of the motion codes, so a scene's video is reproducible and unbounded.
    time: float = 0.0
    motion_seed: int = 0
    # A picture the user brought (models/fit): the SHA-256 of the fit file that holds its
    # fitted styles (and tuned weights, if any). Each fitted style stands for the seed the
    # fit gave its object or block; restyling or resampling one replaces just that one.
    fit: str | None = None

    def __post_init__(self) -> None:
        _seed(self.seed, "seed")
        if self.fit is not None and not (isinstance(self.fit, str) and len(self.fit) == 64
                                         and all(ch in "0123456789abcdef" for ch in self.fit)):
            raise SceneError(f"fit must be null or the 64 hex digits of a fit file's SHA-256, got {self.fit!r:.80}")
        _seed(self.background_seed, "background_seed")
        _seed(self.motion_seed, "motion_seed")
        _number(self.truncation, "truncation", -1.0, 2.0)
        _number(self.offset_strength, "offset_strength", 0.0, MAX_STRENGTH)
        _number(self.time, "time", 0.0, MAX_TIME)
        if not isinstance(self.offsets_on, bool):
            raise SceneError(f"offsets_on must be true or false, got {self.offsets_on!r}")
        objs = tuple(self.objects)
        if not all(isinstance(o, ObjectState) for o in objs):
            raise SceneError("objects must be ObjectState values")
        object.__setattr__(self, "objects", objs)
        seeds = tuple(_seed(s, "block seed") for s in self.block_seeds)
        object.__setattr__(self, "block_seeds", seeds)

    def timeless(self) -> SceneState:
        """The scene without its playhead: what an edit changes, what a video's frames share."""
        return self if self.time == 0.0 else replace(self, time=0.0)

    # ---- what the generator sees ----------------------------------------------------
    @property
    def offset_scale(self) -> float:
        return self.offset_strength if self.offsets_on else 0.0

    def hierarchy_centers(self) -> list[list[Point]]:
        """Absolute centers per level (hierarchical scenes): [[root], [2], [4]]."""
        if self.hierarchy is None or not self.objects:
            return []
        rx, ry = self.objects[0].center
        lvl1 = [(rx + dx, ry + dy) for dx, dy in self.hierarchy.offsets1]
        lvl2 = [(lvl1[k // 2][0] + dx, lvl1[k // 2][1] + dy) for k, (dx, dy) in enumerate(self.hierarchy.offsets2)]
        return [[(rx, ry)], lvl1, lvl2]

    def check_fits(self, config: GeneratorConfig) -> None:
        """Raise SceneError if this scene cannot drive a generator of this config."""
        want_objects = 1 if config.hierarchical else config.objects
        if len(self.objects) != want_objects:
            raise SceneError(f"the scene has {len(self.objects)} objects, the generator expects {want_objects}")
        if config.hierarchical != (self.hierarchy is not None):
            raise SceneError("the scene's hierarchical centers do not match the generator"
                             f" (generator hierarchical={config.hierarchical})")
        if len(self.block_seeds) != config.grid ** 2:
            raise SceneError(f"the scene has {len(self.block_seeds)} block seeds, the generator's"
                             f" {config.grid}x{config.grid} grid needs {config.grid ** 2}")
        for i, o in enumerate(self.objects):
            if o.kind is not None and o.kind not in config.object_kinds:
                known = f"one of {list(config.object_kinds)}" if config.object_kinds else "not told kinds"
                raise SceneError(f"object {i + 1} is a {o.kind!r}, and the generator is {known}")

    # ---- edits (each returns a new state) -------------------------------------------
    def with_object(self, index: int, **changes: Any) -> SceneState:
        self._check_index(index)
        objs = list(self.objects)
        objs[index] = replace(objs[index], **changes)
        return replace(self, objects=tuple(objs))

    def move_center(self, level: int, index: int, center: Point) -> SceneState:
        """Move one handle. Level 0 (or any object) moves its finer centers along with it;
        a level-1 center moves its two level-2 children with it."""
        center = _point(center, "center")
        if self.hierarchy is None or level == 0:
            if self.hierarchy is not None:
                _index(index, 1, "hierarchy level 0")  # the root is the level's one center
            return self.with_object(index if self.hierarchy is None else 0, center=center)
        levels = self.hierarchy_centers()
        if level in (1, 2):
            _index(index, HIERARCHY_CENTERS[level], f"hierarchy level {level}")
        if level == 1:
            root = levels[0][0]
            off1 = list(self.hierarchy.offsets1)
            off1[index] = _offset(center, root)
            return replace(self, hierarchy=replace(self.hierarchy, offsets1=tuple(off1)))
        if level == 2:
            parent = levels[1][index // 2]
            off2 = list(self.hierarchy.offsets2)
            off2[index] = _offset(center, parent)
            return replace(self, hierarchy=replace(self.hierarchy, offsets2=tuple(off2)))
        raise SceneError(f"hierarchy level must be 0, 1 or 2, got {level}")

    def with_block_seeds(self, changes: dict[int, int]) -> SceneState:
        seeds = list(self.block_seeds)
        for i, s in changes.items():
            seeds[_index(i, len(seeds), "block")] = _seed(s, "block seed")
        return replace(self, block_seeds=tuple(seeds))

    def resample_blocks(self, indices: Iterable[int], seed: int) -> SceneState:
        """New latents for these blocks only, drawn from `seed` (the edit is reproducible)."""
        rng = random.Random(seed)
        return self.with_block_seeds({i: rng.randrange(SEED_LIMIT) for i in sorted(set(indices))})

    def new_sample(self, seed: int, layout_prior: str = "free", kinds: tuple[str, ...] = ()) -> SceneState:
        """Everything drawn anew from `seed`, except locked objects and the view settings
        (`layout_prior`, `kinds`: the generator's, GeneratorConfig.layout_prior and object_kinds)."""
        fresh = initial_state_like(self, seed, layout_prior, kinds)
        objs = tuple(old if old.locked else new for old, new in zip(self.objects, fresh.objects))
        # A locked figure keeps its pose too (its limbs' centers), not only its root's place.
        hierarchy = self.hierarchy if self.hierarchy is not None and self.objects[0].locked else fresh.hierarchy
        # The fit stays: a locked object keeps its seed, so it keeps its fitted style too.
        return replace(fresh, objects=objs, hierarchy=hierarchy, truncation=self.truncation, fit=self.fit,
                       offsets_on=self.offsets_on, offset_strength=self.offset_strength, time=self.time)

    def _check_index(self, index: int) -> None:
        _index(index, len(self.objects), "object")

    # ---- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "truncation": self.truncation,
            "objects": [{"center": list(o.center), "sigma": o.sigma, "style_seed": o.style_seed,
                         "visible": o.visible, "locked": o.locked,
                         **({"kind": o.kind} if o.kind is not None else {})}  # older readers: no kinds
                        for o in self.objects],
            "hierarchy": None if self.hierarchy is None else {
                "offsets1": [list(p) for p in self.hierarchy.offsets1],
                "offsets2": [list(p) for p in self.hierarchy.offsets2]},
            "block_seeds": list(self.block_seeds),
            "background_seed": self.background_seed,
            "offsets_on": self.offsets_on,
            "offset_strength": self.offset_strength,
            "time": self.time,
            "motion_seed": self.motion_seed,
            **({"fit": self.fit} if self.fit is not None else {}),  # older readers open unfitted scenes
        }

    @classmethod
    def from_dict(cls, data: Any) -> SceneState:
        if not isinstance(data, dict):
            raise SceneError(f"a scene must be a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SceneError(f"unknown scene keys: {unknown}")
        kw = dict(data)
        objs = kw.get("objects", [])
        if not isinstance(objs, list):
            raise SceneError(f"objects must be a list, got {objs!r}")
        parsed = []
        for i, o in enumerate(objs):
            if not isinstance(o, dict):
                raise SceneError(f"objects[{i}] must be an object, got {o!r}")
            bad = sorted(set(o) - set(ObjectState.__dataclass_fields__))
            if bad or "center" not in o:
                raise SceneError(f"objects[{i}] needs a center and takes only"
                                 f" {sorted(ObjectState.__dataclass_fields__)}; got keys {sorted(o)}")
            for flag in ("visible", "locked"):
                if flag in o and not isinstance(o[flag], bool):
                    raise SceneError(f"objects[{i}].{flag} must be true or false, got {o[flag]!r}")
            parsed.append(ObjectState(**o))
        kw["objects"] = tuple(parsed)
        h = kw.get("hierarchy")
        if h is not None:
            if not isinstance(h, dict) or set(h) != {"offsets1", "offsets2"}:
                raise SceneError(f"hierarchy must be an object with offsets1 and offsets2, got {h!r}")
            kw["hierarchy"] = Hierarchy(**h)
        if "block_seeds" in kw:
            if not isinstance(kw["block_seeds"], list):
                raise SceneError(f"block_seeds must be a list, got {kw['block_seeds']!r}")
            kw["block_seeds"] = tuple(kw["block_seeds"])
        try:
            return cls(**kw)
        except TypeError as exc:
            raise SceneError(str(exc)) from None


def initial_state(config: GeneratorConfig, seed: int) -> SceneState:
    """A fresh scene for a generator, drawn reproducibly from one seed."""
    return draw_scene(seed, objects=config.objects, hierarchical=config.hierarchical, grid=config.grid,
                      layout_prior=config.layout_prior, kinds=tuple(config.object_kinds))


def initial_state_like(state: SceneState, seed: int, layout_prior: str = "free",
                       kinds: tuple[str, ...] = ()) -> SceneState:
    """A fresh scene of the same shape as `state` (object count, grid, hierarchy)."""
    hierarchical = state.hierarchy is not None
    return draw_scene(seed, objects=0 if hierarchical else len(state.objects), hierarchical=hierarchical,
                      grid=int(round(math.sqrt(len(state.block_seeds)))),
                      layout_prior=layout_prior if hierarchical else "free", kinds=kinds)


def draw_scene(seed: int, objects: int, hierarchical: bool, grid: int, layout_prior: str = "free",
               kinds: tuple[str, ...] = ()) -> SceneState:
    """A new scene. A hierarchical one's finer centers: jittered around their parent
    ("free"), or laid out like a person ("skeleton", models.config.LAYOUT_PRIORS). `kinds`
    (a generator's object_kinds): each object is one of them, drawn after everything else,
    so that a seed draws the same scene as for a generator without kinds."""
    rng = random.Random(_seed(seed, "seed"))

    def new_seed() -> int:
        return rng.randrange(SEED_LIMIT)

    def inside() -> float:  # start objects well inside the frame, where a user can grab them
        return round(rng.uniform(0.2, 0.8), 4)

    def jitter(scale: float) -> float:
        return round(max(-scale, min(scale, rng.gauss(0.0, scale / 1.5))), 4)

    objs: list[ObjectState] = []
    hierarchy = None
    if hierarchical:
        objs.append(ObjectState(center=(inside(), inside()), sigma=DEFAULT_ROOT_SIGMA, style_seed=new_seed()))
        if layout_prior == "skeleton":  # each center at its mean offset, jittered by up to 1.5 std
            def part(mean: tuple[float, float], std: tuple[float, float]) -> Point:
                return (round(mean[0] + jitter(1.5 * std[0]), 4), round(mean[1] + jitter(1.5 * std[1]), 4))

            hierarchy = Hierarchy(offsets1=tuple(part(*c) for c in SKELETON_OFFSETS1),
                                  offsets2=tuple(part(*c) for c in SKELETON_OFFSETS2))
        else:
            hierarchy = Hierarchy(offsets1=tuple((jitter(0.25), jitter(0.25)) for _ in range(HIERARCHY_CENTERS[1])),
                                  offsets2=tuple((jitter(0.12), jitter(0.12)) for _ in range(HIERARCHY_CENTERS[2])))
    for _ in range(objects):
        objs.append(ObjectState(center=(inside(), inside()), sigma=DEFAULT_OBJECT_SIGMA, style_seed=new_seed()))
    blocks = tuple(new_seed() for _ in range(grid ** 2))
    background, motion = new_seed(), new_seed()
    if kinds and not hierarchical:
        objs = [replace(o, kind=rng.choice(kinds)) for o in objs]
    return SceneState(seed=seed, objects=tuple(objs), hierarchy=hierarchy, block_seeds=blocks,
                      background_seed=background, motion_seed=motion)
