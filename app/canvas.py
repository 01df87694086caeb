"""The canvas: the rendered image, scaled crisply to the view, its overlays, and the mouse.

The canvas never edits the scene itself: a drag, wheel or click becomes a call on the
Document (the one place edits are applied). Handles follow the document's state at once;
the image follows when the worker's frame for that state arrives.

View coordinates are normalised scene coordinates: the image item spans (0, 0)-(1, 1).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy

from models.document.scene import MAX_SIGMA

from . import theme
from .overlays import DiffOverlay, GridOverlay, HandlesOverlay, OffsetOverlay, handles_for

GRAB_SLOP_PX = 4  # a handle can be grabbed this far outside its drawn dot
RING_GRAB_PX = 5  # the sigma ring can be grabbed this far either side of the line
MIN_SIGMA = 0.01  # shrinking below this removes the object (sigma 0)
RESTORE_SIGMA = 0.03  # growing a removed object starts here
WHEEL_STEP = 1.12  # sigma factor per wheel notch
CLICK_SLOP_PX = 4  # a press and release this close is a click, not a drag
CENTER_LIMIT = (-0.25, 1.25)  # keep handles reachable: a little past the image edge at most
UNIT_RECT = QRectF(0, 0, 1, 1)  # the image spans normalised scene coordinates
PICTURE_OPACITY = 0.5  # the fitted picture over the image: both show through (View ▸ Show Fitted Picture)


class Canvas(pg.GraphicsView):
    frameShown = Signal(int)  # request id of the frame now on screen
    dragFinished = Signal()  # a handle drag ended (the window then renders the full frame)

    def __init__(self, document, parent=None):
        super().__init__(parent, background=theme.BACKGROUND)
        self.document = document
        self.view = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.setCentralItem(self.view)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image_item)
        # The picture a scene was fitted to (app/fitting.py), over the image and under the
        # markers, to compare; hidden until View ▸ Show Fitted Picture.
        self.picture = pg.ImageItem(axisOrder="row-major")
        self.picture.setOpacity(PICTURE_OPACITY)
        self.picture.setVisible(False)
        self.view.addItem(self.picture)
        self._picture_rgb = None
        self.diff = DiffOverlay()
        self.grid = GridOverlay()
        self.offsets = OffsetOverlay()
        self.handles = HandlesOverlay()
        for item in (self.diff, self.grid, self.offsets, self.handles):
            self.view.addItem(item, ignoreBounds=True)
        self.view.setRange(UNIT_RECT, padding=0.02)
        self.view.disableAutoRange()
        self.setMouseTracking(True)
        self.setAcceptDrops(False)  # a file dropped on the picture goes to the window: it opens it
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 240)

        self.frame = None  # the models.render.Frame on screen
        self.frame_state = None  # the SceneState that frame was rendered from
        self.frame_id = 0
        self.flash_differences = True  # tint what a block resample changed, briefly
        self._flash_for = None  # the state whose frame gets the difference highlight
        self._drag: dict | None = None
        self._press: dict | None = None
        document.stateChanged.connect(self._on_state)
        document.generatorChanged.connect(self._on_generator)

    # ---- what is shown ---------------------------------------------------------------
    def show_frame(self, request_id: int, frame, state) -> None:
        before = None if self.frame is None else self.frame.image
        # uint8 RGB, row-major, no levels: pyqtgraph's fast path to a QImage. A Frame's image
        # is a strided view (torch's permute); making it contiguous is the one copy we need.
        image = np.ascontiguousarray(frame.image)
        self.image_item.setImage(image, autoLevels=False, levels=None, rect=UNIT_RECT)
        if self._flash_for is not None and state == self._flash_for:
            if before is not None and self.flash_differences:
                self.diff.flash(before, frame.image)
            self._flash_for = None
        self.frame, self.frame_state, self.frame_id = frame, state, request_id
        self.frameShown.emit(request_id)

    @property
    def dragging(self) -> bool:
        """A handle is being dragged (the window renders previews meanwhile)."""
        return self._drag is not None

    def set_overlay_visible(self, name: str, visible: bool) -> None:
        getattr(self, name).setVisible(visible)

    def set_smooth(self, on: bool) -> None:
        """Scale the picture smoothly (bilinear) or crisply (nearest: each generated pixel a
        square, to edit by). A view setting (View ▸ Smooth Pixels), not part of the scene."""
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, on)
        self.viewport().update()

    def overlay_visible(self, name: str) -> bool:
        return getattr(self, name).isVisible()

    def set_picture(self, rgb: np.ndarray | None) -> None:
        """The fitted picture the overlay draws ([S, S, 3] uint8), or None: nothing to draw."""
        if rgb is self._picture_rgb:
            return  # called on every state change (each mouse move of a drag)
        self._picture_rgb = rgb
        if rgb is None:
            self.picture.clear()
        else:
            self.picture.setImage(np.ascontiguousarray(rgb), autoLevels=False, levels=None, rect=UNIT_RECT)

    def set_offset_field(self, offsets: np.ndarray | None, gain: float) -> None:
        self.offsets.set_field(offsets, gain)

    def _on_state(self, state) -> None:
        self.handles.set_handles(handles_for(state))

    def _on_generator(self, info) -> None:
        # A load that lands mid-drag: the handle held belongs to the old scene (its level and
        # index may not exist in the new one, or name another object): the drag ends here.
        self._drag = self._press = None
        self.handles.draft = False
        self.grid.set_grid(info.config.grid)
        self.frame = self.frame_state = None
        self.image_item.clear()

    # ---- coordinates -----------------------------------------------------------------
    def to_scene(self, pos: QPointF) -> tuple[float, float]:
        p = self.view.mapSceneToView(self.mapToScene(pos.toPoint()))
        return (p.x(), p.y())

    def to_widget(self, x: float, y: float) -> QPointF:
        return QPointF(self.mapFromScene(self.view.mapViewToScene(QPointF(x, y))))

    def pixels_per_unit(self) -> float:
        a, b = self.to_widget(0, 0), self.to_widget(1, 0)
        return max(1e-6, b.x() - a.x())

    def handle_at(self, pos: QPointF):
        """(handle, part) under a widget position; part is 'center' or 'ring'. Centers win
        over rings, the topmost (last drawn) handle over those below it."""
        if not self.handles.isVisible():
            return None, None
        scale = self.pixels_per_unit()
        for h in reversed(self.handles.handles):
            c = self.to_widget(*h.center)
            if math.hypot(pos.x() - c.x(), pos.y() - c.y()) <= h.radius_px + GRAB_SLOP_PX:
                return h, "center"
        for h in reversed(self.handles.handles):
            if h.ring_sigma and not h.removed:
                c = self.to_widget(*h.center)
                d = math.hypot(pos.x() - c.x(), pos.y() - c.y())
                if abs(d - h.ring_sigma * scale) <= RING_GRAB_PX:
                    return h, "ring"
        return None, None

    def block_at(self, pos: QPointF) -> int | None:
        g = self.grid.grid
        if not g or not self.grid.isVisible():
            return None
        x, y = self.to_scene(pos)
        if not (0 <= x < 1 and 0 <= y < 1):
            return None
        return int(y * g) * g + int(x * g)

    # ---- mouse -----------------------------------------------------------------------
    def mousePressEvent(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self.document.state is None:
            ev.ignore()
            return
        pos = ev.position()
        handle, part = self.handle_at(pos)
        if handle is not None:
            x, y = self.to_scene(pos)
            self._drag = {"handle": handle, "part": part, "merge_id": self.document.new_merge_id(),
                          "grab": (x - handle.center[0], y - handle.center[1])}
            self.handles.set_active((handle.level, handle.index))
            self.handles.draft = True
            self.setCursor(Qt.CursorShape.ClosedHandCursor if part == "center" else Qt.CursorShape.SizeFDiagCursor)
        else:
            self._press = {"pos": pos, "block": self.block_at(pos),
                           "shift": bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)}
        ev.accept()

    def mouseMoveEvent(self, ev) -> None:
        pos = ev.position()
        if self._drag is not None and not ev.buttons() & Qt.MouseButton.LeftButton:
            self._end_drag(pos)  # its release went elsewhere (a dialog, another window)
        elif self._drag is not None:
            self._drag_to(pos)
        elif self._press is None:
            self._hover(pos)
        ev.accept()

    def mouseReleaseEvent(self, ev) -> None:
        pos = ev.position()
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()  # another button's release while the left is held ends nothing
            return
        if self._drag is not None:
            try:
                self._drag_to(pos)  # the release position is the drag's last state
            finally:
                self._end_drag(pos)
        elif self._press is not None:
            press, self._press = self._press, None
            moved = math.hypot(pos.x() - press["pos"].x(), pos.y() - press["pos"].y())
            if press["block"] is not None and moved <= CLICK_SLOP_PX and press["block"] == self.block_at(pos):
                self._click_block(press["block"], press["shift"])
        ev.accept()

    def _end_drag(self, pos: QPointF) -> None:
        self._drag = None
        self.handles.draft = False
        self.handles.update()
        self._hover(pos)
        self.dragFinished.emit()

    def mouseDoubleClickEvent(self, ev) -> None:
        self.mousePressEvent(ev)  # a fast second click is another click, not a special gesture

    def wheelEvent(self, ev) -> None:
        handle, _ = self.handle_at(ev.position())
        state = self.document.state
        if handle is None or state is None:
            ev.ignore()
            return
        notches = ev.angleDelta().y() / 120.0
        index = 0 if state.hierarchy is not None else handle.index
        obj = state.objects[index]
        sigma = obj.sigma * WHEEL_STEP ** notches if obj.sigma > 0 else (RESTORE_SIGMA if notches > 0 else 0.0)
        self.document.set_sigma(index, _snap_sigma(sigma), self.document.gesture_id(("sigma", index)))
        ev.accept()

    def leaveEvent(self, ev) -> None:
        if self._drag is None:
            self.handles.set_active(None)
            self.grid.hovered = None
            self.grid.update()
        super().leaveEvent(ev)

    def _drag_to(self, pos: QPointF) -> None:
        d = self._drag
        h = d["handle"]
        x, y = self.to_scene(pos)
        if d["part"] == "center":
            lo, hi = CENTER_LIMIT
            center = (min(max(x - d["grab"][0], lo), hi), min(max(y - d["grab"][1], lo), hi))
            self.document.move_handle(h.level, h.index, center, d["merge_id"])
        else:
            sigma = math.hypot(x - h.center[0], y - h.center[1])  # a ring drag leaves the center
            index = 0 if self.document.state.hierarchy is not None else h.index
            self.document.set_sigma(index, _snap_sigma(sigma), d["merge_id"])

    def _hover(self, pos: QPointF) -> None:
        handle, part = self.handle_at(pos)
        self.handles.set_active(None if handle is None else (handle.level, handle.index))
        block = None if handle is not None else self.block_at(pos)
        if block != self.grid.hovered:
            self.grid.hovered = block
            self.grid.update()
        if handle is not None:
            self.setCursor(Qt.CursorShape.OpenHandCursor if part == "center" else Qt.CursorShape.SizeFDiagCursor)
        elif block is not None:
            self.setCursor(Qt.CursorShape.PointingHandCursor)
        else:
            self.unsetCursor()

    # ---- blocks ----------------------------------------------------------------------
    def _click_block(self, block: int, shift: bool) -> None:
        """Shift-click toggles a block in the selection; a plain click resamples the
        selection together with the clicked block (or just the clicked block)."""
        if shift:
            self.grid.selected ^= {block}
            self.grid.update()
            return
        self.resample_blocks(self.grid.selected | {block})

    def resample_selection(self) -> bool:
        return self.resample_blocks(self.grid.selected)

    def resample_blocks(self, blocks) -> bool:
        blocks = set(blocks)
        self.grid.selected = set()
        self.grid.update()
        if not blocks or not self.document.resample_blocks(blocks):
            return False
        self._flash_for = self.document.state  # highlight the change when its frame arrives
        return True

    def clear_selection(self) -> None:
        self.grid.selected = set()
        self.grid.update()

    # ---- export with overlays --------------------------------------------------------
    def grab_image_area(self, size: int) -> np.ndarray:
        """The image and the visible overlays, as on screen, rendered at size x size."""
        source = self.view.mapViewToScene(QRectF(0, 0, 1, 1)).boundingRect()
        target = QImage(size, size, QImage.Format.Format_RGB888)
        target.fill(0)
        painter = QPainter(target)
        self.scene().render(painter, QRectF(0, 0, size, size), source, Qt.AspectRatioMode.IgnoreAspectRatio)
        painter.end()
        ptr = target.constBits()
        rows = np.frombuffer(ptr, np.uint8).reshape(size, target.bytesPerLine())
        return rows[:, : size * 3].reshape(size, size, 3).copy()


def _snap_sigma(sigma: float) -> float:
    return 0.0 if sigma < MIN_SIGMA else min(MAX_SIGMA, round(sigma, 4))
