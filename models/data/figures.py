"""Figures: one articulated person per image, with large pose variation (the case where
deformable convolutions matter), a mask of the whole figure and the joint positions.

The skeleton is computed from joint angles by forward kinematics, then drawn as capsules
(limbs), a tapered rounded box (torso) and discs (head, hands). Angles are stored as
base + oscillation, so clips.py only has to fill in the motion.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.data.batch import SceneBatch, TensorFields, oscillate, per_sample_time, uniform
from models.data.draw import (
    TWO_PI,
    box_sdf,
    capsule_sdf,
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

KEYPOINTS = ("head", "neck", "pelvis", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
             "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle")
# Joint angles, radians. Limb angles are measured from the torso's "down" direction,
# positive = away from the body on that side; bends are relative to the upper segment.
ANGLES = ("tilt", "head", "r_arm", "r_elbow", "l_arm", "l_elbow", "r_leg", "r_knee", "l_leg", "l_knee")
ANGLE_RANGES = torch.tensor([[-.6, .6], [-.4, .4], [-.4, 2.9], [-.3, 2.4], [-.4, 2.9], [-.3, 2.4],
                             [-.3, 1.2], [-2.2, .2], [-.3, 1.2], [-2.2, .2]])
# Segment lengths and radii as fractions of the torso length.
UPPER_ARM, FOREARM, THIGH, SHIN = .6, .55, .78, .72
ARM_R, LEG_R, HEAD_R, HAND_R = .09, .11, .23, .08
SHOULDER_W, HIP_W = .24, .15  # joint offsets from the torso axis
GRADIENT, TWO_TONE, STRIPES = range(3)
# The parts a figure's pixels belong to (render_figures' part map: 0 background, then these
# in order): what a part segmenter learns, so that a trained G can be asked for a head where
# the skeleton puts one (training.parts). Hands and feet belong to their limbs, the neck and
# hair to the head, the trousers' hip band to the legs.
PARTS = ("head", "torso", "arm", "leg")
HEAD, TORSO, ARM, LEG = range(1, len(PARTS) + 1)


@dataclass
class FigureParams(TensorFields):
    root: torch.Tensor  # [B, 2] torso centre at t = 0
    scale: torch.Tensor  # [B] torso length in image units
    angles: torch.Tensor  # [B, len(ANGLES)] at t = 0
    shirt: torch.Tensor  # [B, 3]
    trousers: torch.Tensor  # [B, 3]
    skin: torch.Tensor  # [B, 3]
    hair: torch.Tensor  # [B, 3]
    shoes: torch.Tensor  # [B, 3]
    long_sleeves: torch.Tensor  # [B] bool
    shorts: torch.Tensor  # [B] bool
    background: torch.Tensor  # [B] long: GRADIENT, TWO_TONE or STRIPES
    bg_colours: torch.Tensor  # [B, 2, 3]
    bg_angle: torch.Tensor  # [B] direction across which the background varies
    bg_split: torch.Tensor  # [B] where the two tones meet (offset from the centre)
    bg_freq: torch.Tensor  # [B] stripes per image unit
    # Motion (zero for still figures, see clips.py).
    angle_amp: torch.Tensor  # [B, len(ANGLES)]
    angle_omega: torch.Tensor
    angle_phase: torch.Tensor
    root_amp: torch.Tensor  # [B, 2]
    root_omega: torch.Tensor
    root_phase: torch.Tensor

    def pose_at(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Root [B, 2] and joint angles [B, len(ANGLES)] at time t [B]."""
        return (oscillate(self.root, self.root_amp, self.root_omega, self.root_phase, t),
                oscillate(self.angles, self.angle_amp, self.angle_omega, self.angle_phase, t))


def sample_figures(batch: int, generator: torch.Generator | None = None) -> FigureParams:
    """Random still figures (CPU tensors)."""
    B, g = batch, generator
    lo, hi = ANGLE_RANGES[:, 0], ANGLE_RANGES[:, 1]

    def hsv(h: tuple[float, float], s: tuple[float, float], v: tuple[float, float]) -> torch.Tensor:
        return hsv_to_rgb(uniform(B, *h, g), uniform(B, *s, g), uniform(B, *v, g))

    skin = hsv((.03, .1), (.25, .65), (.3, .95))
    zeros = torch.zeros
    return FigureParams(
        root=(0.5 + torch.randn(B, 2, generator=g) / 6).clamp(.15, .85),
        scale=uniform(B, .16, .26, g),
        angles=lo + (hi - lo) * torch.rand(B, len(ANGLES), generator=g),
        shirt=hsv((0, 1), (.3, .9), (.3, .95)), trousers=hsv((0, 1), (.2, .7), (.15, .7)), skin=skin,
        hair=hsv((.02, .12), (.3, .8), (.05, .6)), shoes=hsv((0, 1), (0, .4), (.05, .35)),
        long_sleeves=torch.rand(B, generator=g) < .5, shorts=torch.rand(B, generator=g) < .3,
        background=torch.randint(3, (B,), generator=g),
        bg_colours=hsv_to_rgb(uniform((B, 2), 0, 1, g), uniform((B, 2), .05, .5, g), uniform((B, 2), .4, .95, g)),
        bg_angle=uniform(B, 0, TWO_PI, g), bg_split=uniform(B, -.3, .3, g), bg_freq=uniform(B, 3, 10, g),
        angle_amp=zeros(B, len(ANGLES)), angle_omega=zeros(B, len(ANGLES)), angle_phase=zeros(B, len(ANGLES)),
        root_amp=zeros(B, 2), root_omega=zeros(B, 2), root_phase=zeros(B, 2))


def _direction(angle: torch.Tensor) -> torch.Tensor:
    """Unit vector [B, 2] for an image-plane angle: 0 points down (+y), positive turns to +x."""
    return torch.stack([torch.sin(angle), torch.cos(angle)], -1)


def skeleton(root: torch.Tensor, scale: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Forward kinematics: keypoints [B, len(KEYPOINTS), 2] in image units."""
    a = dict(zip(ANGLES, angles.unbind(-1)))
    L = scale[:, None]
    tilt = a["tilt"]
    down = _direction(tilt)
    right = torch.stack([down[:, 1], -down[:, 0]], -1)  # the figure's right hand side, image +x at tilt 0
    neck, pelvis = root - down * L / 2, root + down * L / 2
    head = neck + _direction(tilt + a["head"] + torch.pi) * L * (HEAD_R + .12)
    points = {"head": head, "neck": neck, "pelvis": pelvis}
    for side, sign in (("r", 1.0), ("l", -1.0)):
        # Positive limb angles turn ACROSS the body (towards -x for the right side at tilt 0),
        # not away from it as this comment once said: of 4,096 figures (seed 0) 86% of right elbows
        # lie inward of their shoulder and 76% have the right knee left of the left (session 29's
        # audit). Kept: the shipped figures models, SKELETON_OFFSETS2 and every metric's real
        # figures were made with it, and the figures read as people in motion.
        shoulder = neck + right * sign * L * SHOULDER_W + down * L * .08
        arm = tilt - sign * a[f"{side}_arm"]
        elbow = shoulder + _direction(arm) * L * UPPER_ARM
        wrist = elbow + _direction(arm - sign * a[f"{side}_elbow"]) * L * FOREARM
        hip = pelvis + right * sign * L * HIP_W
        leg = tilt - sign * a[f"{side}_leg"]
        knee = hip + _direction(leg) * L * THIGH
        ankle = knee + _direction(leg - sign * a[f"{side}_knee"]) * L * SHIN
        points.update({f"{side}_shoulder": shoulder, f"{side}_elbow": elbow, f"{side}_wrist": wrist,
                       f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle})
    return torch.stack([points[k] for k in KEYPOINTS], 1)


def skeleton_hierarchy(keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generator's 1-2-4 hierarchy of centers (SEL_norm) read off skeletons [B, K, 2]:
    the torso centre; the head-and-shoulders and the knees; then the hands (children of the
    upper body) and the feet (children of the legs). Returned as (root [B, 2], offsets1
    [B, 2, 2], offsets2 [B, 4, 2]), offsets relative to the parent as the generator takes
    them. A layout-conditional trainer (figures-cpu) gives G these real hierarchies."""
    k = {name: keypoints[:, i] for i, name in enumerate(KEYPOINTS)}
    root = (k["neck"] + k["pelvis"]) / 2
    level1 = torch.stack([(k["head"] + k["r_shoulder"] + k["l_shoulder"]) / 3, (k["r_knee"] + k["l_knee"]) / 2], 1)
    level2 = torch.stack([k["r_wrist"], k["l_wrist"], k["r_ankle"], k["l_ankle"]], 1)
    return root, level1 - root[:, None], level2 - level1.repeat_interleave(2, dim=1)


def posed(p: FigureParams, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Root [B, 2], joint angles [B, len(ANGLES)] and keypoints [B, K, 2] at time t [B]."""
    root, angles = p.pose_at(t)
    return root, angles, skeleton(root, p.scale, angles)


def render_figures(params: FigureParams, size: int, t: float | torch.Tensor = 0.0,
                   device: torch.device | str = "cpu") -> SceneBatch:
    """Images [B, 3, S, S] in [-1, 1], the figure's mask [B, 1, S, S], torso centre [B, 1, 2],
    keypoints [B, K, 2] and the part map [B, S, S] (PARTS) at time t (seconds; a number or one
    per scene)."""
    p = params.to(device)
    B = p.batch
    t = per_sample_time(t, B, device)
    x, y = pixel_grid(size, device)
    root, angles, kp = posed(p, t)
    k = {name: kp[:, i] for i, name in enumerate(KEYPOINTS)}
    L = p.scale
    image = _background(p, x, y, size)
    mask = torch.zeros(B, 1, size, size, device=device)
    parts = torch.zeros(B, size, size, dtype=torch.long, device=device)

    def paint(dist, colour, part):
        nonlocal image, mask, parts
        alpha = coverage(dist, size)
        image = over(image, col(colour), alpha)
        mask = union(mask, alpha)
        parts = torch.where(alpha[:, 0] > 0.5, part, parts)  # what is mostly on top owns the pixel

    def limb(a, b, radius, colour, part):
        paint(capsule_sdf(x, y, k[a], k[b], L * radius), colour, part)

    forearm = torch.where(p.long_sleeves[:, None], p.shirt, p.skin)
    shin = torch.where(p.shorts[:, None], p.skin, p.trousers)
    for side in ("r", "l"):  # legs behind the torso
        limb(f"{side}_hip", f"{side}_knee", LEG_R, p.trousers, LEG)
        limb(f"{side}_knee", f"{side}_ankle", LEG_R * .9, shin, LEG)
        foot = k[f"{side}_ankle"] + _direction(angles[:, 0] - 1.4 * (1 if side == "r" else -1)) * L[:, None] * .18
        paint(capsule_sdf(x, y, k[f"{side}_ankle"], foot, L * LEG_R), p.shoes, LEG)
    # Torso: wider at the shoulders than at the hips, in the torso's tilted frame.
    u, v = rotate(x - col(root[:, 0]), y - col(root[:, 1]), col(-angles[:, 0]))  # into the frame where "down" is +v
    paint(box_sdf(u, v, col(L * .28), col(L * .55), col(L * .1), -0.2), p.shirt, TORSO)
    limb("pelvis", "r_hip", LEG_R * 1.2, p.trousers, LEG)
    limb("pelvis", "l_hip", LEG_R * 1.2, p.trousers, LEG)
    for side in ("r", "l"):  # arms in front of the torso
        limb(f"{side}_shoulder", f"{side}_elbow", ARM_R, p.shirt, ARM)
        limb(f"{side}_elbow", f"{side}_wrist", ARM_R * .9, forearm, ARM)
        paint(capsule_sdf(x, y, k[f"{side}_wrist"], k[f"{side}_wrist"], L * HAND_R), p.skin, ARM)
    limb("neck", "head", .07, p.skin, HEAD)
    # Hair: a slightly larger disc behind the face, shifted towards the top of the head.
    up = k["head"] - k["neck"]
    up = up / up.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    hair_c = k["head"] + up * L[:, None] * .05
    paint(ellipse_sdf(x - col(hair_c[:, 0]), y - col(hair_c[:, 1]), col(L * HEAD_R * 1.05), col(L * HEAD_R * 1.05)),
          p.hair, HEAD)
    face_c = k["head"] - up * L[:, None] * .03
    paint(ellipse_sdf(x - col(face_c[:, 0]), y - col(face_c[:, 1]), col(L * HEAD_R * .9), col(L * HEAD_R * .95)),
          p.skin, HEAD)
    return SceneBatch(images=image.clamp(0.0, 1.0) * 2.0 - 1.0, masks=mask, centers=root[:, None, :],
                      kinds=torch.zeros(B, 1, dtype=torch.long, device=device),
                      present=torch.ones(B, 1, dtype=torch.bool, device=device), keypoints=kp, parts=parts)


def _background(p: FigureParams, x: torch.Tensor, y: torch.Tensor, size: int) -> torch.Tensor:
    s = (x - 0.5) * col(torch.cos(p.bg_angle)) + (y - 0.5) * col(torch.sin(p.bg_angle))  # [-0.7, 0.7]
    c0, c1 = col(p.bg_colours[:, 0]), col(p.bg_colours[:, 1])
    weight = torch.where(col(p.background) == GRADIENT, (s + 0.5).clamp(0, 1),
                         torch.where(col(p.background) == TWO_TONE, coverage(col(p.bg_split) - s, size),
                                     soft_square(s * col(p.bg_freq) * TWO_PI)))
    return c0 + weight * (c1 - c0)
