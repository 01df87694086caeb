"""Rooms: indoor-like scenes with a few movable furniture-like objects and their masks.

Sampling (random, on the CPU, from a torch.Generator) is separate from rendering (pure,
on any device, at a real time t): moving an object and re-rendering changes nothing else.
Every object kind is a short list of parts in the object's own frame (x right, y down,
the object spans [-1, 1] on both axes), so all kinds render with one vectorised loop.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from models.config import ROOM_KINDS
from models.data.batch import SceneBatch, TensorFields, oscillate, per_sample_time, uniform
from models.data.draw import (
    TWO_PI,
    box_sdf,
    col,
    coverage,
    ellipse_sdf,
    hsv_to_rgb,
    over,
    pixel_grid,
    rotate,
    soft_square,
    union,
)

KINDS = ROOM_KINDS  # the names a generator told an object's kind uses (GeneratorConfig.object_kinds)
# Width / height range per kind: beds and rugs are wide, lamps tall.
ASPECTS = torch.tensor([[1.3, 2.2], [0.6, 1.3], [0.6, 1.7], [0.35, 0.5], [0.55, 0.85], [2.5, 4.0]])
# Colour roles a part can take from its object's palette (see _palette).
MAIN, SECOND, DARK, LIGHT, ACCENT, SKY, DARK_ACCENT, LIGHT_ACCENT = range(8)
BOX, ELLIPSE, EITHER = 0, 1, 2  # EITHER: the object's own round_shape flag decides (rugs)
# One row per part: centre x, y, half width, half height (object units), corner radius
# (fraction of the smaller half side), taper (>0 widens downwards), shape, colour role,
# patterned (mixes in the second colour), jitter (random centre offset, object units).
# Layouts are balanced so that the object's area centroid sits near its center (lamps and
# plants reach lower than -1..1 for that): the center is where the object's mass is, which
# is what a heatmap placed on it should mean.
_LAYOUTS: dict[str, list[tuple[float, ...]]] = {
    "bed": [(0, -.55, 1, .45, .3, 0, BOX, ACCENT, 0, 0), (0, .82, 1, .18, .2, 0, BOX, DARK_ACCENT, 0, 0),
            (0, .2, .97, .5, .25, 0, BOX, MAIN, 1, 0), (-.45, -.3, .38, .15, 1, 0, BOX, LIGHT, 0, 0),
            (.45, -.3, .38, .15, 1, 0, BOX, LIGHT, 0, 0)],
    "window": [(0, 0, 1, 1, .05, 0, BOX, ACCENT, 0, 0), (0, 0, .86, .86, 0, 0, BOX, SKY, 0, 0),
               (0, 0, .06, .88, 0, 0, BOX, ACCENT, 0, 0), (0, 0, .88, .06, 0, 0, BOX, ACCENT, 0, 0),
               (0, 1, 1.12, .07, .3, 0, BOX, LIGHT_ACCENT, 0, 0)],
    "painting": [(0, 0, 1, 1, .03, 0, BOX, DARK_ACCENT, 0, 0), (0, 0, .88, .88, 0, 0, BOX, LIGHT_ACCENT, 0, 0),
                 (0, 0, .76, .76, 0, 0, BOX, MAIN, 1, 0), (0, 0, .28, .28, 0, 0, ELLIPSE, DARK, 0, .35)],
    "lamp": [(0, 1.23, .55, .07, 0, 0, ELLIPSE, DARK_ACCENT, 0, 0), (0, .6, .06, .65, 0, 0, BOX, DARK_ACCENT, 0, 0),
             (0, -.32, .68, .38, .1, .4, BOX, MAIN, 1, 0)],
    "plant": [(-.42, -.2, .5, .42, 0, 0, ELLIPSE, ACCENT, 0, .15), (.42, -.25, .5, .42, 0, 0, ELLIPSE, ACCENT, 0, .15),
              (0, -.53, .42, .32, 0, 0, ELLIPSE, LIGHT_ACCENT, 0, .15),
              (0, .75, .42, .4, .1, -.3, BOX, MAIN, 0, 0), (0, .37, .5, .07, .3, 0, BOX, DARK, 0, 0)],
    "rug": [(0, 0, 1, 1, .2, 0, EITHER, ACCENT, 0, 0), (0, 0, .88, .78, .2, 0, EITHER, MAIN, 1, 0)],
}
N_PARTS = max(len(v) for v in _LAYOUTS.values())
# [kinds, parts, 11]: a leading "used" column, then the row above; unused parts are zeros.
PARTS = torch.tensor([[(1.0, *row) for row in _LAYOUTS[k]] + [(0.0,) * 11] * (N_PARTS - len(_LAYOUTS[k]))
                      for k in KINDS])
USED, CX, CY, HW, HH, RADIUS, TAPER, SHAPE, ROLE, PATTERNED, JITTER = range(11)
SOLID, STRIPES, CHECKS = range(3)


@dataclass
class RoomParams(TensorFields):
    """One batch of rooms. Shapes: B scenes, n object slots, N_PARTS parts per object."""

    horizon: torch.Tensor  # [B] y of the floor line along the back wall
    wall_left: torch.Tensor  # [B] x where the back wall meets the left side wall (<0: no side walls)
    wall_right: torch.Tensor  # [B]
    ceiling: torch.Tensor  # [B] y of the ceiling line along the back wall (<0: no ceiling in view)
    vanish_y: torch.Tensor  # [B] height of the vanishing point that slants the side walls' edges
    wall_colour: torch.Tensor  # [B, 3] in [0, 1]
    floor_colour: torch.Tensor  # [B, 3]
    planks: torch.Tensor  # [B] floorboard count (0: plain floor)
    light_angle: torch.Tensor  # [B] direction the light comes from (radians)
    light_strength: torch.Tensor  # [B] how strongly brightness varies across the image
    kind: torch.Tensor  # [B, n] long index into KINDS
    present: torch.Tensor  # [B, n] bool
    center: torch.Tensor  # [B, n, 2] at t = 0
    half_size: torch.Tensor  # [B, n, 2] half width, half height in image units
    rotation: torch.Tensor  # [B, n] radians
    colour_a: torch.Tensor  # [B, n, 3] main colour
    colour_b: torch.Tensor  # [B, n, 3] second colour of the pattern
    colour_c: torch.Tensor  # [B, n, 3] accent: frames, wood, leaves
    sky: torch.Tensor  # [B, n, 3] what a window shows
    pattern: torch.Tensor  # [B, n] long: SOLID, STRIPES or CHECKS
    pattern_freq: torch.Tensor  # [B, n] cycles per image unit
    pattern_angle: torch.Tensor  # [B, n] radians, in the object's frame
    pattern_phase: torch.Tensor  # [B, n] radians
    round_shape: torch.Tensor  # [B, n] bool: rugs are ellipses rather than rectangles
    jitter: torch.Tensor  # [B, n, N_PARTS, 2] in [-1, 1]: per-instance part offsets
    # Motion (zero for still scenes, see clips.py): center(t) = oscillate(center, ...).
    motion_amp: torch.Tensor  # [B, n, 2]
    motion_omega: torch.Tensor  # [B, n, 2] rad/s
    motion_phase: torch.Tensor  # [B, n, 2]
    light_amp: torch.Tensor  # [B] radians
    light_omega: torch.Tensor  # [B]
    light_phase: torch.Tensor  # [B]

    def moved(self, index: int | torch.Tensor, delta) -> RoomParams:
        """The same scene with object `index` (an int, or [B] per scene) shifted by delta
        ((dx, dy) or [B, 2], image units): nothing else is resampled."""
        B, n = self.kind.shape
        index = torch.as_tensor(index, dtype=torch.long, device=self.center.device).expand(B)
        if bool(((index < 0) | (index >= n)).any()):  # one_hot would say only "class values"
            bad = sorted({int(i) for i in index[(index < 0) | (index >= n)].tolist()})
            raise ValueError(f"moved: object index must be in 0..{n - 1} (the scenes have {n} object slots), got {bad}")
        delta = torch.as_tensor(delta, dtype=torch.float32, device=self.center.device).expand(B, 2)
        onehot = torch.nn.functional.one_hot(index, n).to(torch.float32)
        return dataclasses.replace(self, center=self.center + onehot[..., None] * delta[:, None, :])

    def centers_at(self, t: torch.Tensor) -> torch.Tensor:
        return oscillate(self.center, self.motion_amp, self.motion_omega, self.motion_phase, t)


def sample_rooms(batch: int, n_objects: int = 3, generator: torch.Generator | None = None) -> RoomParams:
    """Random still rooms with 1..n_objects present objects (CPU tensors)."""
    if n_objects < 1:
        raise ValueError(f"n_objects must be at least 1, got {n_objects}")
    B, n, g = batch, n_objects, generator
    side = torch.rand(B, generator=g) < 0.6
    wood = torch.rand(B, generator=g) < 0.6
    floor_hsv = torch.where(wood[:, None], torch.stack([uniform(B, .05, .11, g), uniform(B, .4, .7, g),
                                                        uniform(B, .35, .7, g)], -1),
                            torch.stack([uniform(B, 0, 1, g), uniform(B, .1, .4, g), uniform(B, .3, .7, g)], -1))
    kind = torch.randint(len(KINDS), (B, n), generator=g)
    count = torch.randint(1, n + 1, (B, 1), generator=g)
    present = torch.rand(B, n, generator=g).argsort(1).argsort(1) < count  # a random subset of `count` slots
    aspect_range = ASPECTS[kind]
    aspect = aspect_range[..., 0] + (aspect_range[..., 1] - aspect_range[..., 0]) * torch.rand(B, n, generator=g)
    scale = uniform((B, n), .08, .2, g)

    def hsv(h: tuple[float, float], s: tuple[float, float], v: tuple[float, float]) -> torch.Tensor:
        return hsv_to_rgb(uniform((B, n), *h, g), uniform((B, n), *s, g), uniform((B, n), *v, g))

    colour_c = hsv((0, 1), (.1, .6), (.3, .95))
    colour_c = torch.where((kind == KINDS.index("plant"))[..., None], hsv((.22, .4), (.5, .85), (.35, .7)), colour_c)
    colour_c = torch.where((kind == KINDS.index("window"))[..., None], hsv((.05, .12), (0, .5), (.45, 1)), colour_c)
    pattern = torch.randint(3, (B, n), generator=g)
    framed = (kind == KINDS.index("painting")) | (kind == KINDS.index("rug"))
    pattern = torch.where(framed, 1 + pattern % 2, pattern)  # paintings and rugs always have a pattern
    zeros = torch.zeros
    return RoomParams(
        horizon=uniform(B, .45, .72, g),
        wall_left=torch.where(side, uniform(B, .08, .3, g), torch.full((B,), -1.0)),
        wall_right=torch.where(side, uniform(B, .7, .92, g), torch.full((B,), 2.0)),
        ceiling=torch.where(torch.rand(B, generator=g) < .5, uniform(B, .05, .2, g), torch.full((B,), -1.0)),
        vanish_y=uniform(B, .3, .45, g),
        wall_colour=hsv_to_rgb(uniform(B, 0, 1, g), uniform(B, .05, .35, g), uniform(B, .6, .95, g)),
        floor_colour=hsv_to_rgb(floor_hsv[:, 0], floor_hsv[:, 1], floor_hsv[:, 2]),
        planks=torch.where(wood, torch.randint(10, 24, (B,), generator=g).float(), zeros(B)),
        light_angle=uniform(B, 0, TWO_PI, g), light_strength=uniform(B, .15, .45, g),
        kind=kind, present=present,
        center=uniform((B, n, 2), .1, .9, g),
        half_size=torch.stack([scale * aspect.sqrt(), scale / aspect.sqrt()], -1),
        rotation=uniform((B, n), -.1, .1, g),
        colour_a=hsv((0, 1), (.25, .85), (.35, .95)), colour_b=hsv((0, 1), (.2, .8), (.5, 1)), colour_c=colour_c,
        sky=hsv((.53, .62), (.15, .45), (.85, 1)),
        pattern=pattern, pattern_freq=uniform((B, n), 6, 20, g),
        pattern_angle=torch.randint(2, (B, n), generator=g).float() * (TWO_PI / 4),
        pattern_phase=uniform((B, n), 0, TWO_PI, g),
        round_shape=torch.rand(B, n, generator=g) < .5,
        jitter=uniform((B, n, N_PARTS, 2), -1, 1, g),
        motion_amp=zeros(B, n, 2), motion_omega=zeros(B, n, 2), motion_phase=zeros(B, n, 2),
        light_amp=zeros(B), light_omega=zeros(B), light_phase=zeros(B))


def render_rooms(params: RoomParams, size: int, t: float | torch.Tensor = 0.0,
                 device: torch.device | str = "cpu") -> SceneBatch:
    """Images [B, 3, S, S] in [-1, 1] and each object's visible mask at time t (seconds;
    a number or one per scene)."""
    p = params.to(device)
    B, n = p.kind.shape
    t = per_sample_time(t, B, device)
    x, y = pixel_grid(size, device)
    image = _background(p, x, y, size)
    centers = p.centers_at(t)
    masks: list[torch.Tensor] = []
    for j in range(n):
        image, alpha = _draw_object(image, p, j, centers[:, j], x, y, size)
        masks = [m * (1.0 - alpha) for m in masks] + [alpha]  # later objects hide earlier ones
    light = col(oscillate(p.light_angle, p.light_amp, p.light_omega, p.light_phase, t))
    shade = 1.0 + col(p.light_strength) * ((x - 0.5) * torch.cos(light) + (y - 0.5) * torch.sin(light))
    images = (image * shade).clamp(0.0, 1.0) * 2.0 - 1.0
    return SceneBatch(images=images, masks=torch.cat(masks, 1), centers=centers,
                      kinds=torch.where(p.present, p.kind, torch.full_like(p.kind, -1)), present=p.present.clone())


def _background(p: RoomParams, x: torch.Tensor, y: torch.Tensor, size: int) -> torch.Tensor:
    """Back wall, side walls and ceiling whose edges slant towards a vanishing point, floor."""
    left, right, horizon = col(p.wall_left), col(p.wall_right), col(p.horizon)
    vx, vy = (left + right) / 2, col(p.vanish_y)
    half = ((right - left) / 2).clamp_min(1e-3)
    outward = torch.maximum((left - x).clamp_min(0.0), (x - right).clamp_min(0.0))  # 0 on the back wall
    floor_line = horizon + outward * (horizon - vy) / half
    ceiling_line = col(p.ceiling) - outward * (vy - col(p.ceiling)) / half
    wall = col(p.wall_colour)
    image = wall.expand(-1, -1, size, size)
    image = over(image, wall * 0.8, union(coverage(x - left, size), coverage(right - x, size)))
    image = over(image, wall + 0.5 * (1.0 - wall), coverage(y - ceiling_line, size))
    # Floorboards run towards the viewer: stripes in the angle seen from the vanishing point.
    plank = soft_square(torch.atan2(x - vx, (y - vy).clamp_min(1e-3)) * col(p.planks) * 2.0, 2.0)
    floor = col(p.floor_colour) * (1.0 - 0.15 * plank * (col(p.planks) > 0))
    image = over(image, floor, coverage(floor_line - y, size))
    return over(image, wall * 0.55, coverage((y - floor_line).abs() - 0.006, size))  # skirting board


def _palette(p: RoomParams, j: int) -> torch.Tensor:
    """[B, 8, 3]: the colours indexed by the part roles."""
    a, c = p.colour_a[:, j], p.colour_c[:, j]
    return torch.stack([a, p.colour_b[:, j], 0.5 * a, a + 0.6 * (1 - a), c, p.sky[:, j], 0.55 * c,
                        c + 0.35 * (1 - c)], 1)


def _pattern(p: RoomParams, j: int, lx: torch.Tensor, ly: torch.Tensor) -> torch.Tensor:
    """[B, 1, S, S] in [0, 1], in the object's own frame so that it moves with the object."""
    ang, freq, phase = col(p.pattern_angle[:, j]), col(p.pattern_freq[:, j]) * TWO_PI, col(p.pattern_phase[:, j])
    s1 = (lx * torch.cos(ang) + ly * torch.sin(ang)) * freq + phase
    s2 = (ly * torch.cos(ang) - lx * torch.sin(ang)) * freq + phase
    stripes = soft_square(s1)
    checks = (torch.sin(s1) * torch.sin(s2) * 6.0).clamp(-1, 1) * 0.5 + 0.5
    kind = col(p.pattern[:, j])
    return torch.where(kind == STRIPES, stripes, torch.where(kind == CHECKS, checks, torch.zeros_like(checks)))


def _draw_object(image, p: RoomParams, j: int, center, x, y, size):
    """Paint object slot j over `image`; returns the new image and the object's coverage."""
    B = image.shape[0]
    table = PARTS.to(image.device)[p.kind[:, j].clamp_min(0)]  # [B, N_PARTS, 11]
    hw, hh = p.half_size[:, j, 0], p.half_size[:, j, 1]
    lx, ly = rotate(x - col(center[:, 0]), y - col(center[:, 1]), col(p.rotation[:, j]))
    pattern = _pattern(p, j, lx, ly)
    palette = _palette(p, j)
    rows = torch.arange(B, device=image.device)
    obj = torch.zeros(B, 1, size, size, device=image.device)
    for k in range(N_PARTS):
        f = table[:, k]
        used = f[:, USED] * p.present[:, j]
        if not bool(used.any()):
            continue
        u = lx - col((f[:, CX] + f[:, JITTER] * p.jitter[:, j, k, 0]) * hw)
        v = ly - col((f[:, CY] + f[:, JITTER] * p.jitter[:, j, k, 1]) * hh)
        phw, phh = col(f[:, HW] * hw), col(f[:, HH] * hh)
        round_ = col((f[:, SHAPE] == ELLIPSE) | ((f[:, SHAPE] == EITHER) & p.round_shape[:, j]))
        dist = box_sdf(u, v, phw, phh, col(f[:, RADIUS]) * torch.minimum(phw, phh), col(f[:, TAPER]))
        if bool(round_.any()):
            dist = torch.where(round_, ellipse_sdf(u, v, phw, phh), dist)
        alpha = coverage(dist, size) * col(used)
        colour = col(palette[rows, f[:, ROLE].long()])
        colour = colour + col(f[:, PATTERNED]) * pattern * (col(p.colour_b[:, j]) - colour)
        image = over(image, colour, alpha)
        obj = union(obj, alpha)
    return image, obj
