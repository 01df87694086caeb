"""What the canvas draws over the image, in normalised scene coordinates ((0, 0) top-left,
(1, 1) bottom-right, the same units as SceneState). Markers are painted at a fixed size in
screen pixels whatever the zoom, by painting in device coordinates."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QVariantAnimation
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen

from . import theme

HANDLE_RADIUS_PX = 8  # the grab area of a handle is a little larger (see canvas.py)
SCENE_BOUNDS = QRectF(-1, -1, 3, 3)  # SceneState allows centers in [-1, 2]


@dataclass(frozen=True)
class Handle:
    level: int  # 0 for objects and the figure root; 1, 2 for finer hierarchy centers
    index: int  # object index, or the center's index within its level
    center: tuple[float, float]
    colour: QColor
    label: str
    radius_px: float = HANDLE_RADIUS_PX
    ring_sigma: float | None = None  # draw (and allow dragging) a sigma ring
    parent: tuple[float, float] | None = None  # hierarchy: draw a link to the parent
    removed: bool = False  # sigma 0 or hidden: drawn hollow, still grabbable to restore


def handles_for(state) -> list[Handle]:
    """One handle per sub-heatmap center; hierarchical scenes show all 4/8/16 centers."""
    if state is None:
        return []
    if state.hierarchy is None:
        return [Handle(0, i, o.center, theme.object_colour(i), str(i + 1), ring_sigma=o.sigma,
                       removed=o.effective_sigma == 0) for i, o in enumerate(state.objects)]
    levels = state.hierarchy_centers()
    root = state.objects[0]
    out = []
    for level, centers in enumerate(levels):
        for k, c in enumerate(centers):
            parent = None if level == 0 else levels[level - 1][0 if level == 1 else k // 2]
            out.append(Handle(level, k, c, QColor(theme.LEVEL_COLOURS[level]), "" if level else "F",
                              radius_px=HANDLE_RADIUS_PX - 2 * level,
                              ring_sigma=root.sigma if level == 0 else None, parent=parent,
                              removed=level == 0 and root.effective_sigma == 0))
    return out


class DeviceOverlay(pg.GraphicsObject):
    """An overlay that paints in screen pixels: map() takes scene units to the device."""

    def boundingRect(self) -> QRectF:
        return SCENE_BOUNDS

    def paint(self, painter: QPainter, *args) -> None:
        transform = painter.transform()
        painter.resetTransform()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.paint_device(painter, transform.map, abs(transform.m11()))

    def paint_device(self, painter: QPainter, map_point, scale: float) -> None:
        raise NotImplementedError


class HandlesOverlay(DeviceOverlay):
    def __init__(self):
        super().__init__()
        self.handles: list[Handle] = []
        self.active: tuple[int, int] | None = None  # (level, index) under the mouse or dragged
        # While dragging, rings are drawn without antialiasing: a smooth large circle costs
        # ~0.3 ms a paint, 60 paints a second, on the CPU the render needs.
        self.draft = False
        self.setZValue(30)

    def set_handles(self, handles: list[Handle]) -> None:
        self.handles = handles
        self.update()

    def set_active(self, key: tuple[int, int] | None) -> None:
        if key != self.active:
            self.active = key
            self.update()

    def paint_device(self, painter, map_point, scale) -> None:
        font = QFont(painter.font())
        font.setPixelSize(10)
        font.setBold(True)
        painter.setFont(font)
        for h in self.handles:  # links first, so the dots sit on top
            if h.parent is not None:
                painter.setPen(QPen(QColor(255, 255, 255, 110), 1, Qt.PenStyle.DashLine))
                painter.drawLine(map_point(QPointF(*h.parent)), map_point(QPointF(*h.center)))
        for h in self.handles:
            p = map_point(QPointF(*h.center))
            active = self.active == (h.level, h.index)
            if h.ring_sigma and not h.removed:
                ring = QColor(h.colour)
                ring.setAlpha(230 if active else 140)
                painter.setPen(QPen(ring, 2 if active else 1.2))  # solid: a dashed ring costs 2x
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, not self.draft)
                r = h.ring_sigma * scale
                painter.drawEllipse(p, r, r)
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            r = h.radius_px + (2 if active else 0)
            if h.removed:  # hollow: the object is gone, the handle stays to bring it back
                painter.setPen(QPen(h.colour, 2))
                painter.setBrush(Qt.BrushStyle.NoBrush)
            else:  # the dark rim keeps the dot visible on light and dark pictures alike
                painter.setPen(QPen(QColor(20, 20, 20, 220), 2))
                painter.setBrush(QBrush(h.colour))
            painter.drawEllipse(p, r, r)
            if h.label and not h.removed:
                painter.setPen(QColor(20, 20, 20))
                painter.drawText(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r), Qt.AlignmentFlag.AlignCenter, h.label)


class GridOverlay(DeviceOverlay):
    """The g x g block grid; selected blocks are tinted, the hovered block outlined."""

    def __init__(self):
        super().__init__()
        self.grid = 0
        self.selected: set[int] = set()
        self.hovered: int | None = None
        self.setZValue(20)

    def set_grid(self, grid: int) -> None:
        self.grid, self.selected, self.hovered = grid, set(), None
        self.update()

    def paint_device(self, painter, map_point, scale) -> None:
        g = self.grid
        if not g:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)

        def block_rect(i: int) -> QRectF:
            row, col = divmod(i, g)
            return QRectF(map_point(QPointF(col / g, row / g)), map_point(QPointF((col + 1) / g, (row + 1) / g)))

        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(76, 155, 234, 90))
        for i in self.selected:
            painter.drawRect(block_rect(i))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(255, 255, 255, 90), 1, Qt.PenStyle.DashLine))
        for k in range(g + 1):
            painter.drawLine(map_point(QPointF(k / g, 0)), map_point(QPointF(k / g, 1)))
            painter.drawLine(map_point(QPointF(0, k / g)), map_point(QPointF(1, k / g)))
        if self.hovered is not None:
            painter.setPen(QPen(QColor(theme.ACCENT), 2))
            painter.drawRect(block_rect(self.hovered))


class OffsetOverlay(DeviceOverlay):
    """An MTM layer's offset field as arrows: the mean displacement over the 9 taps of each
    output pixel, in that layer's pixels, scaled to the canvas (one layer pixel = 1/r)."""

    def __init__(self):
        super().__init__()
        self.field: np.ndarray | None = None  # [2, r, r]: mean (dy, dx) in layer pixels
        self.gain = 1.0
        self.setZValue(25)

    def set_field(self, offsets: np.ndarray | None, gain: float) -> None:
        self.field = None if offsets is None else mean_displacement(offsets)
        self.gain = gain
        self.update()

    def paint_device(self, painter, map_point, scale) -> None:
        if self.field is None:
            return
        dy, dx = self.field
        r = dy.shape[0]
        # The field describes the image: arrows near the edge are cut at the image's border,
        # never drawn over the canvas around it.
        painter.setClipRect(QRectF(map_point(QPointF(0, 0)), map_point(QPointF(1, 1))).normalized(),
                            Qt.ClipOperation.IntersectClip)
        colour = QColor(theme.OFFSET_COLOUR)
        painter.setPen(QPen(colour, 1.4))
        painter.setBrush(QBrush(colour))
        for i in range(r):
            for j in range(r):
                base = QPointF((j + 0.5) / r, (i + 0.5) / r)
                tip = QPointF(base.x() + dx[i, j] * self.gain / r, base.y() + dy[i, j] * self.gain / r)
                a, b = map_point(base), map_point(tip)
                _arrow(painter, a, b)


def _arrow(painter: QPainter, a: QPointF, b: QPointF) -> None:
    vx, vy = b.x() - a.x(), b.y() - a.y()
    length = math.hypot(vx, vy)
    if length < 2.0:  # no visible displacement: a dot says "the field is here, and ~0"
        painter.drawEllipse(a, 1.2, 1.2)
        return
    painter.drawLine(a, b)
    ux, uy = vx / length, vy / length
    head = min(6.0, length * 0.4)
    left = QPointF(b.x() - head * (ux - 0.5 * uy), b.y() - head * (uy + 0.5 * ux))
    right = QPointF(b.x() - head * (ux + 0.5 * uy), b.y() - head * (uy - 0.5 * ux))
    painter.drawPolygon([b, left, right])


def mean_displacement(offsets: np.ndarray) -> np.ndarray:
    """[18, r, r] offsets, (dy, dx) per tap k = ky*3 + kx -> [2, r, r] mean (dy, dx)."""
    taps = offsets.reshape(9, 2, *offsets.shape[1:])
    return taps.mean(axis=0)


def offset_magnitudes(offsets: np.ndarray) -> tuple[float, float]:
    """Mean and max length of the per-tap displacements, in the layer's pixels."""
    taps = offsets.reshape(9, 2, *offsets.shape[1:])
    length = np.sqrt((taps ** 2).sum(axis=1))
    return float(length.mean()), float(length.max())


class DiffOverlay(pg.ImageItem):
    """A short-lived highlight of what changed: the per-pixel difference to the previous
    frame, tinted, fading out."""

    FADE_MS = 1400

    def __init__(self):
        super().__init__(axisOrder="row-major")
        self.setZValue(10)
        self.setOpacity(0.0)
        # Parented to the item: Qt deletes it with the item, on the GUI thread.
        self._fade = QVariantAnimation(self, duration=self.FADE_MS, startValue=1.0, endValue=0.0)
        self._fade.valueChanged.connect(self.setOpacity)

    def flash(self, before: np.ndarray, after: np.ndarray) -> None:
        if before.shape != after.shape:
            return
        diff = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2).astype(np.float32)
        peak = float(diff.max())
        if peak == 0:
            return
        rgba = np.empty(diff.shape + (4,), np.uint8)
        rgba[..., :3] = theme.DIFF_COLOUR
        rgba[..., 3] = np.clip(diff / peak * 255 * 1.5, 0, 220).astype(np.uint8)
        self.setImage(rgba, autoLevels=False, levels=(0, 255), rect=QRectF(0, 0, 1, 1))
        self._fade.stop()
        self._fade.start()
