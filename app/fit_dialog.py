"""The progress of fitting a picture (issue 26): the picture and the live reconstruction side
by side, the stage, step and PSNR, and a Cancel that stops the fit within a step.

It is the video export's progress dialog (app/video_export.ExportProgress) with the two
pictures: the same window-modal dialog (no edits while the worker fits), the same Cancel
that stays on screen ("Cancelling…") until the worker has stopped, Esc and closing it
cancel too.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout

from . import theme
from .video_export import ExportProgress

SHOWN_PX = 256  # both pictures are scaled up to this (a 64 px reconstruction is unreadable small)
BAR_STEPS = 1000
STAGES = {"styles": "Fitting the styles and layout", "tuning": "Tuning the generator's weights"}


def pixmap(rgb: np.ndarray, side: int = SHOWN_PX) -> QPixmap:
    """[H, W, 3] uint8 -> a side x side pixmap, pixels kept crisp (as the canvas shows them)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    image = QImage(rgb.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()  # owns its pixels
    return QPixmap.fromImage(image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.FastTransformation)


class FitProgress(ExportProgress):
    """`budgets`: each stage's time budget in seconds. A stage ends at its step budget or
    its time budget, whichever comes first, so the bar follows whichever is further along."""

    def __init__(self, name: str, tune: bool, budgets: dict[str, float], parent=None):
        super().__init__(name, BAR_STEPS, parent)
        self.budgets = budgets
        self.step = 0  # of the stage now running
        self._stage: tuple[str, float] | None = None  # (stage, when its first step was reported)
        self.setWindowTitle("Fit picture")
        self.label.setText(f"Reading {name}…")
        self.picture = self._image_label("The picture")
        self.reconstruction = self._image_label("The reconstruction")
        self.psnr = QLabel("")
        note = QLabel("Then the generator's weights are tuned (slower, closer)." if tune else
                      "The generator's weights stay as they are (File ▸ Tune Weights When Fitting).")
        note.setStyleSheet(f"color: {theme.MUTED};")
        grid = QGridLayout()
        for col, (title, image) in enumerate((("Picture", self.picture), ("Reconstruction", self.reconstruction))):
            caption = QLabel(title)
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(caption, 0, col)
            grid.addWidget(image, 1, col)
        box = self.layout()  # ExportProgress's column: label, bar, the Cancel row
        assert isinstance(box, QVBoxLayout)
        box.insertLayout(0, grid)
        box.insertWidget(3, self.psnr)
        box.insertWidget(4, note)
        self.bar.setRange(0, 0)  # busy until the first step: reading, the segmenter's layout
        self.bar.setTextVisible(False)
        self.setMinimumWidth(2 * SHOWN_PX + 48)

    @staticmethod
    def _image_label(tip: str) -> QLabel:
        label = QLabel()
        label.setFixedSize(SHOWN_PX, SHOWN_PX)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setStyleSheet(f"background: {theme.BACKGROUND};")
        label.setToolTip(tip)
        return label

    def set_picture(self, rgb: np.ndarray) -> None:
        self.picture.setPixmap(pixmap(rgb))
        if self.cancel_button.isEnabled():
            self.label.setText("Finding the objects in the picture…")

    def set_step(self, stage: str, step: int, total: int, psnr_db: float, image: np.ndarray | None) -> None:
        if image is not None:
            self.reconstruction.setPixmap(pixmap(image))
        if not self.cancel_button.isEnabled():
            return  # "Cancelling…" stays until the worker has stopped
        now = time.monotonic()
        if self._stage is None or self._stage[0] != stage:
            self._stage = (stage, now)
        self.step = step
        elapsed, budget = now - self._stage[1], self.budgets.get(stage, 0.0)
        done = max(step / max(total, 1), elapsed / budget if budget > 0 else 0.0)
        left = budget - elapsed if budget > 0 else float("inf")
        if step > 1:
            left = min(left, elapsed / (step - 1) * (total - step))
        text = f"{STAGES.get(stage, stage)}: step {step}" + (f", about {left:.0f} s left" if step > 1 else "")
        self.bar.setRange(0, BAR_STEPS)
        self.set_progress(round(min(done, 1.0) * BAR_STEPS), text)
        self.psnr.setText(f"PSNR {psnr_db:.1f} dB (higher is closer)")
