"""Small reusable controls."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QSizePolicy,
    QSlider,
    QWidget,
)

_SLIDER_KEYS = {Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp,
                Qt.Key.Key_PageDown, Qt.Key.Key_Home, Qt.Key.Key_End}


class KeysToFocusedControls(QObject):
    """The window's one-key shortcuts (Space, N, R, O, the arrows...) leave a focused control
    its own keys: Space presses a focused button or check box (not New Sample), a letter picks
    a combo box's item ("r": Rug, not Resample), the arrows move a focused slider. Qt asks
    the focused widget first (ShortcutOverride): watch() puts this filter on such a control
    when it takes the focus (QApplication.focusChanged), so that no other widget's events (a
    drag's mouse moves) pass through Python.

    The other way round, a focused spin box (seed, sigma, truncation, strength) gives the
    window Ctrl+Z and Ctrl+Shift+Z unless it holds typing of its own to undo: its line edit
    claims them always, and its text is set anew by each step and each value it commits, so
    with one focused (as after stepping the seed with the arrows) the scene's undo did nothing."""

    def watch(self, _old, new) -> None:
        if isinstance(new, (QAbstractButton, QComboBox, QAbstractSlider, QAbstractSpinBox)):
            new.installEventFilter(self)  # (installing it again is a no-op that moves it first)

    def eventFilter(self, obj, event) -> bool:
        if event.type() != QEvent.Type.ShortcutOverride:
            return False
        if isinstance(obj, QAbstractSpinBox):
            return _undo_goes_to_the_window(obj, event)
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if modifiers not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
            return False  # Ctrl+Z and the like stay the window's
        key = event.key()
        ours = ((isinstance(obj, QAbstractButton) and key == Qt.Key.Key_Space)
                or (isinstance(obj, QComboBox) and bool(event.text().strip() or key == Qt.Key.Key_Space))
                or (isinstance(obj, QAbstractSlider) and key in _SLIDER_KEYS))
        if ours:
            event.accept()  # the key goes to the control as a key press
        return False


def _undo_goes_to_the_window(box: QAbstractSpinBox, event) -> bool:
    """True (the spin box never sees the key, so the window's shortcut runs) for Undo or
    Redo when the box's line edit has no typing of its own to undo or redo."""
    edit = box.lineEdit()
    if event.matches(QKeySequence.StandardKey.Undo):
        typed = edit.isUndoAvailable()
    elif event.matches(QKeySequence.StandardKey.Redo):
        typed = edit.isRedoAvailable()
    else:
        return False
    if typed:
        return False
    event.ignore()
    return True


class ValueSlider(QWidget):
    """A slider with a spin box beside it, for a real value in [lo, hi].

    `edited(value)` fires on user changes only, never from `set_value`, so syncing the
    control to the document's state cannot echo back as an edit."""

    edited = Signal(float)

    def __init__(self, lo: float, hi: float, step: float, decimals: int = 2, parent=None,
                 limits: tuple[float, float] | None = None):
        super().__init__(parent)
        self._scale = round(1 / step)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(lo * self._scale), round(hi * self._scale))
        self.spin = QDoubleSpinBox()
        # `limits`: what the value may be when wider than the slider's useful part; the spin
        # box shows (and steps from) such a value, the slider stops at its end.
        self.spin.setRange(*(limits or (lo, hi)))
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
        # One press of the slider's handle is one gesture, one undo step, however long the
        # user pauses while holding it: gesture_key() names the press, `held` says it lasts.
        self.held, self._presses = False, 0
        self.slider.sliderPressed.connect(self._pressed)
        self.slider.sliderReleased.connect(lambda: setattr(self, "held", False))

    def _pressed(self) -> None:
        self.held, self._presses = True, self._presses + 1

    def gesture_key(self, name) -> tuple:
        """For Document.gesture_id(key, held): this control's edits since its last press."""
        return (name, self._presses)

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
