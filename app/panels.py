"""The side panels: sample controls, the objects list, MTM controls. Each panel shows the
document's state (synced with signals blocked, so showing is never editing) and turns
user input into Document edit calls."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from models.document.scene import MAX_SIGMA, MAX_STRENGTH, SEED_LIMIT

from . import theme
from .views import OffsetStatsPlot
from .widgets import ValueSlider

TRUNCATION_LIMITS = (-1.0, 2.0)  # what SceneState accepts (models/document/scene.py)


class SamplePanel(QWidget):
    def __init__(self, document, new_sample_action: QAction, parent=None):
        super().__init__(parent)
        self.document = document
        self.seed = QSpinBox()
        self.seed.setRange(0, SEED_LIMIT - 1)  # seeds are in [0, SEED_LIMIT)
        self.seed.setKeyboardTracking(False)
        self.seed.setToolTip("The sample's seed: type one and press Enter, or step with the arrows, to draw"
                             " that sample")
        # valueChanged, not editingFinished: with keyboard tracking off it fires on Enter or
        # focus loss for a typed seed and at once for the arrows and the wheel, so the box never
        # shows a seed the scene does not have (editingFinished left an arrow's step pending).
        self.seed.valueChanged.connect(self._seed_entered)
        new = QToolButton()
        new.setDefaultAction(new_sample_action)
        new.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(new)
        # A scene may hold any truncation in SceneState's [-1, 2] (a session written by a
        # script): the box shows it as it is (it showed 1.50 for 1.8, and a step went to 1.45).
        self.truncation = ValueSlider(0.0, 1.5, 0.05, limits=TRUNCATION_LIMITS)
        self.truncation.setToolTip("Truncation ψ: lower is closer to the average image")
        self.truncation.edited.connect(
            lambda v: document.set_truncation(v, document.gesture_id(self.truncation.gesture_key("truncation"),
                                                                     self.truncation.held)))
        form = QFormLayout(self)
        form.addRow("Seed", seed_row)
        form.addRow("Truncation", self.truncation)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)  # the objects dock grows
        document.stateChanged.connect(self.sync)

    def _seed_entered(self, *_) -> None:
        state = self.document.state
        if state is not None and self.seed.value() != state.seed:
            self.document.new_sample(self.seed.value())

    def sync(self, state) -> None:
        with QSignalBlocker(self.seed):
            self.seed.setValue(state.seed)
        self.truncation.set_value(state.truncation)


class ObjectRow(QFrame):
    """One object: show/remove, lock, sigma, new style, copy style from another and, for a
    generator told kinds (GeneratorConfig.object_kinds), what the object is."""

    def __init__(self, document, index: int, count: int, name: str, colour: str, kinds: tuple[str, ...] = (),
                 parent=None):
        super().__init__(parent)
        self.document, self.index = document, index
        self.setObjectName("objectRow")
        self.setStyleSheet(f"#objectRow {{ border-left: 4px solid {colour}; background: {theme.RAISED};"
                           " border-radius: 3px; }")
        title = QLabel(f"<b>{name}</b>")
        self.visible = QCheckBox("Show")
        self.visible.setToolTip("Untick to remove the object from the scene (its sigma is kept)")
        self.visible.toggled.connect(lambda on: document.set_visible(index, on))
        self.locked = QCheckBox("Lock")
        self.locked.setToolTip("A locked object keeps its place and style on \"New Sample\"")
        self.locked.toggled.connect(lambda on: document.set_locked(index, on))
        self.sigma = QDoubleSpinBox()
        self.sigma.setRange(0.0, MAX_SIGMA)
        self.sigma.setSingleStep(0.01)
        self.sigma.setDecimals(3)
        self.sigma.setPrefix("σ ")
        self.sigma.setKeyboardTracking(False)
        self.sigma.setToolTip("Size (sigma, a fraction of the image side); 0 removes the object."
                              " The mouse wheel over a handle does the same")
        self.sigma.valueChanged.connect(
            lambda v: document.set_sigma(index, v, document.gesture_id(("sigma", index))))
        self.new_style = QPushButton("New Style")
        self.new_style.setToolTip("Draw a new style for this object only")
        self.new_style.clicked.connect(lambda: document.new_style(index))
        self.copy_from = QComboBox()
        self.copy_from.setToolTip("Give this object the style of another one")
        self.copy_from.addItem("Copy Style…", None)
        for j in range(count):
            if j != index:
                self.copy_from.addItem(f"from object {j + 1}", j)
        self.copy_from.setEnabled(count > 1)
        self.copy_from.activated.connect(self._copy)
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 6, 6, 6)
        grid.setVerticalSpacing(4)
        grid.addWidget(title, 0, 0)
        grid.addWidget(self.visible, 0, 1)
        grid.addWidget(self.locked, 0, 2)
        grid.addWidget(self.sigma, 1, 0)
        grid.addWidget(self.new_style, 1, 1)
        grid.addWidget(self.copy_from, 1, 2)
        self.kind: QComboBox | None = None
        if kinds:
            self.kind = QComboBox()
            self.kind.setToolTip("What this object is: the generator draws this kind here")
            for k in kinds:
                self.kind.addItem(k.capitalize(), k)
            self.kind.activated.connect(lambda row: document.set_kind(index, self.kind.itemData(row)))
            grid.addWidget(QLabel("Kind"), 2, 0, Qt.AlignmentFlag.AlignRight)
            grid.addWidget(self.kind, 2, 1, 1, 2)

    def _copy(self, row: int) -> None:
        source = self.copy_from.itemData(row)
        with QSignalBlocker(self.copy_from):
            self.copy_from.setCurrentIndex(0)
        if source is not None:
            self.document.copy_style(self.index, source)

    def sync(self, obj) -> None:
        for box, value in ((self.visible, obj.visible), (self.locked, obj.locked)):
            with QSignalBlocker(box):
                box.setChecked(value)
        with QSignalBlocker(self.sigma):
            self.sigma.setValue(obj.sigma)
        if self.kind is not None:
            with QSignalBlocker(self.kind):
                self.kind.setCurrentIndex(self.kind.findData(obj.kind))  # -1 (blank): not said


class ObjectsPanel(QWidget):
    def __init__(self, document, parent=None):
        super().__init__(parent)
        self.document = document
        self.rows: list[ObjectRow] = []
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(6, 6, 6, 6)
        self._layout.setSpacing(6)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f"color: {theme.MUTED}; padding: 4px 2px;")
        self._layout.addWidget(self.hint)
        self._layout.addStretch(1)
        document.generatorChanged.connect(self._rebuild)
        document.stateChanged.connect(self.sync)

    def _rebuild(self, info) -> None:
        for row in self.rows:
            row.deleteLater()
        cfg = info.config
        count = 1 if cfg.hierarchical else cfg.objects
        if cfg.hierarchical:  # the figure's root handle is drawn in the level-0 colour
            rows = [("Figure", theme.LEVEL_COLOURS[0])]
        else:
            rows = [(f"Object {i + 1}", theme.object_colour(i).name()) for i in range(count)]
        kinds = tuple(cfg.object_kinds)
        self.rows = [ObjectRow(self.document, i, count, name, colour, kinds) for i, (name, colour) in enumerate(rows)]
        for i, row in enumerate(self.rows):
            self._layout.insertWidget(i, row)
        tips = ["Drag a handle to move it (the figure's coarse center carries the finer ones)." if cfg.hierarchical
                else "Drag a handle to move its object.",
                "The mouse wheel over a handle, or dragging its ring, resizes it; down to nothing removes it."]
        if cfg.grid:
            tips.append("Click a block of the grid to resample it; Shift-click several, then press R.")
        self.hint.setText(" ".join(tips))

    def sync(self, state) -> None:
        for row, obj in zip(self.rows, state.objects):
            row.sync(obj)


class MtmPanel(QWidget):
    """Offsets on/off and strength (scene edits), and which layer's field the canvas shows
    (a view setting, not part of the scene)."""

    fieldChanged = Signal()  # layer, visibility or arrow scale changed: redraw the field

    def __init__(self, document, offsets_action: QAction, field_action: QAction, parent=None):
        super().__init__(parent)
        self.document = document
        self.field_action = field_action
        on = QToolButton()
        on.setDefaultAction(offsets_action)
        on.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        show = QToolButton()
        show.setDefaultAction(field_action)
        show.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        toggles = QHBoxLayout()
        toggles.addWidget(on)
        toggles.addWidget(show)
        toggles.addStretch(1)
        self.strength = ValueSlider(0.0, MAX_STRENGTH, 0.05)
        self.strength.setToolTip("Scale of the learned offsets: 0 none, 1 as trained, 2 exaggerated")
        self.strength.edited.connect(
            lambda v: document.set_offset_strength(v, document.gesture_id(
                self.strength.gesture_key("offset strength"), self.strength.held)))
        self.layer = QComboBox()
        self.layer.setToolTip("Which MTM layer's offset field the canvas shows")
        self.layer.currentIndexChanged.connect(lambda _: self.fieldChanged.emit())
        self.gain = QSpinBox()
        self.gain.setRange(1, 50)
        self.gain.setValue(4)
        self.gain.setPrefix("×")
        self.gain.setToolTip("Arrow length scale (the field itself is in the layer's pixels)")
        self.gain.valueChanged.connect(lambda _: self.fieldChanged.emit())
        field_row = QHBoxLayout()
        field_row.addWidget(self.layer, 1)
        field_row.addWidget(self.gain)
        self.stats = OffsetStatsPlot()
        form = QFormLayout(self)
        form.addRow(toggles)
        form.addRow("Strength", self.strength)
        form.addRow("Field", field_row)
        form.addRow(self.stats)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        field_action.toggled.connect(lambda _: self.fieldChanged.emit())
        document.stateChanged.connect(self.sync)

    def sync(self, state) -> None:
        self.strength.set_value(state.offset_strength)

    def chosen_layer(self) -> str | None:
        return self.layer.currentText() or None

    def show_frame(self, frame) -> None:
        """New frame: keep the layer list current and plot each layer's offset sizes."""
        names = sorted(frame.offsets, key=_layer_order)
        if names != [self.layer.itemText(i) for i in range(self.layer.count())]:
            keep = self.layer.currentText()
            with QSignalBlocker(self.layer):
                self.layer.clear()
                self.layer.addItems(names)
                if keep in names:
                    self.layer.setCurrentText(keep)
            if self.layer.currentText() != keep:
                # Another layer is shown (a model without the one chosen): its field is drawn.
                # This can run after the frame's own field update (the window defers the
                # panels' refresh during playback and drags), so it must say so itself.
                self.fieldChanged.emit()
        self.stats.show_offsets(names, frame.offsets)


def _layer_order(name: str) -> tuple[int, int]:
    """'16.1' -> (16, 1): coarse layers first, in the generator's order."""
    res, _, conv = name.partition(".")
    return (int(res), int(conv or 0)) if res.isdigit() and (conv or "0").isdigit() else (1 << 30, 0)
