"""Small live views of a frame's extras: the heatmaps per level (or per object), and the MTM
offset sizes per layer. Both redraw on every frame, so they follow a drag."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor

from . import theme
from .overlays import offset_magnitudes


def _lut(colour: QColor) -> np.ndarray:
    """Black to the given colour, 256 steps: a heatmap tinted like its handle."""
    ramp = np.linspace(0.0, 1.0, 256)[:, None]
    return (ramp * np.array([colour.red(), colour.green(), colour.blue()])).astype(np.uint8)


def heatmap_panes(frame, config) -> list[tuple[str, np.ndarray, QColor]]:
    """(title, [h, w] map in [0, 1], colour) for each heatmap the frame carries."""
    panes = []
    objects = frame.heatmaps.get("heatmaps_objects")
    if objects is not None:
        for i, h in enumerate(objects):
            panes.append((f"object {i + 1}", h, theme.object_colour(i)))
    levels = sorted((k for k in frame.heatmaps if k.startswith("heatmap_")), key=lambda k: int(k.split("_")[1]))
    for level, key in enumerate(levels):
        h = frame.heatmaps[key][0]
        panes.append((f"level {level} · {h.shape[0]}×{h.shape[1]}", h, QColor(theme.LEVEL_COLOURS[level % 3])))
    return panes


class HeatmapViews(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(120)
        self.ci.setSpacing(4)
        self._titles: list[str] = []
        self._items: list[pg.ImageItem] = []

    def show_frame(self, frame, config=None) -> None:
        panes = heatmap_panes(frame, config)
        titles = [p[0] for p in panes]
        if titles != self._titles:
            self._build(panes)
        for item, (_, heat, _) in zip(self._items, panes):
            item.setImage(heat, autoLevels=False, levels=(0.0, 1.0), rect=QRectF(0, 0, 1, 1))

    def _build(self, panes) -> None:
        self.clear()
        self._items = []
        self._titles = [p[0] for p in panes]
        for col, (title, _heat, colour) in enumerate(panes):
            self.addLabel(title, row=0, col=col, size="8pt", color=theme.MUTED)
            view = self.addViewBox(row=1, col=col, lockAspect=True, invertY=True, enableMouse=False,
                                   enableMenu=False)
            item = pg.ImageItem(axisOrder="row-major", lut=_lut(colour))
            view.addItem(item)
            view.setRange(QRectF(0, 0, 1, 1), padding=0.02)
            view.disableAutoRange()
            self._items.append(item)


class OffsetStatsPlot(pg.PlotWidget):
    """Mean (bars) and max (dots) length of the MTM offsets per layer, in layer pixels."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFixedHeight(150)
        self.setMenuEnabled(False)
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.getPlotItem().setLabel("left", "offset (layer px)")
        self.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
        self.getPlotItem().setTitle("mean (bars) and max (dots) per layer", size="8pt", color=theme.MUTED)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=theme.OFFSET_COLOUR)
        self.peaks = pg.ScatterPlotItem(size=7, brush=pg.mkBrush("#ffffff"), pen=None)
        self.addItem(self.bars)
        self.addItem(self.peaks)
        self.values: dict[str, tuple[float, float]] = {}
        self._names: list[str] = []
        self._top = 0.0

    def show_offsets(self, names: list[str], offsets: dict[str, np.ndarray]) -> None:
        self.values = {n: offset_magnitudes(offsets[n]) for n in names}
        x = np.arange(len(names))
        means = np.array([self.values[n][0] for n in names])
        peaks = np.array([self.values[n][1] for n in names])
        self.bars.setOpts(x=x, height=means)
        self.peaks.setData(x=x, y=peaks)
        if names != self._names:  # axes re-layout only when the layers change
            self._names = names
            self.getPlotItem().getAxis("bottom").setTicks([list(zip(x.tolist(), names))])
            self.setXRange(-0.6, max(len(names) - 0.4, 0.6), padding=0)
        top = max(float(peaks.max()) if len(peaks) else 0.0, 0.05)
        if not 0.6 * self._top <= top <= self._top:  # rescale on growth, or a big shrink
            self._top = top * 1.15
            self.setYRange(0, self._top, padding=0)
