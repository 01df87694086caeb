"""Small reusable controls."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QSizePolicy, QSlider, QWidget


class ValueSlider(QWidget):
    """A slider with a spin box beside it, for a real value in [lo, hi].

    `edited(value)` fires on user changes only, never from `set_value`, so syncing the
    control to the document's state cannot echo back as an edit."""

    edited = Signal(float)

    def __init__(self, lo: float, hi: float, step: float, decimals: int = 2, parent=None):
        super().__init__(parent)
        self._scale = round(1 / step)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(lo * self._scale), round(hi * self._scale))
        self.spin = QDoubleSpinBox()
        self.spin.setRange(lo, hi)
        self.spin.setSingleStep(step)
        self.spin.setDecimals(decimals)
        self.spin.setKeyboardTracking(False)  # typing "1.5" is one edit, not "1" then "1.5"
        self.spin.setFixedWidth(70)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def value(self) -> float:
        return self.spin.value()

    def set_value(self, value: float) -> None:
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setValue(round(value * self._scale))
            self.spin.setValue(value)

    def _from_slider(self, raw: int) -> None:
        value = raw / self._scale
        with QSignalBlocker(self.spin):
            self.spin.setValue(value)
        self.edited.emit(value)

    def _from_spin(self, value: float) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(round(value * self._scale))
        self.edited.emit(value)
