"""Export Video: a dialog for the file, range, rate and size, then the export on the render
worker's thread (it owns the model) with a progress dialog that can cancel it.

Frames are streamed to the encoder (models.io.video.write_video), so memory stays flat
however long the video; the file appears only when it is complete, and a cancel or an
error leaves no partial file (an existing file at the path is untouched).
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from models.document.fileio import ExportError
from models.document.video_timing import check_target, frame_count

from . import settings, theme
from .export import FOLDER_KEY, ReplaceGuard, default_export_path, path_row, size_choices
from .playback import FPS_CHOICES, MAX_LENGTH_S
from .render_worker import VideoJob

FILTERS = "MP4 video (*.mp4);;GIF animation (*.gif)"
SCALES = (1, 2, 4)


class VideoExportDialog(QDialog):
    """Checks what it can before closing (type, folder, GIF rate, frame count), so a bad
    choice is shown beside the fields and nothing starts."""

    def __init__(self, native: int, stem: str, fps: int, length_s: float, start_s: float, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export video")
        self.path = QLineEdit(default_export_path(stem, ".mp4"))
        self.start = self._seconds(start_s, 0.0, "Time of the first frame (the playhead's)")
        self._playhead_s = start_s  # exact: the box shows it to 2 decimals (1/24 s is 0.04)
        self.length = self._seconds(length_s, 0.1, "Length of the video")
        self.fps = QComboBox()
        for choice in FPS_CHOICES:
            self.fps.addItem(f"{choice} fps", choice)
        self.fps.setCurrentIndex(max(0, self.fps.findData(fps)))
        self.size = size_choices(native, SCALES)
        self.frames_label = QLabel()
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #ff6b6b;")
        self.error.hide()
        for widget in (self.start, self.length):
            widget.valueChanged.connect(self._update_frames)
        self.fps.currentIndexChanged.connect(self._update_frames)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setText("Export")
        self.replace = ReplaceGuard(self.path, self.save_button, self.error)
        buttons.accepted.connect(self._accept_if_valid)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("File", path_row(self.path, self._browse))
        form.addRow("Start", self.start)
        form.addRow("Length", self.length)
        form.addRow("Frame rate", self.fps)
        form.addRow("Size", self.size)
        form.addRow("", self.frames_label)
        form.addRow(self.error)
        form.addRow(buttons)
        self.frames_label.setStyleSheet(f"color: {theme.MUTED};")
        self._update_frames()
        self.resize(540, self.sizeHint().height())

    @staticmethod
    def _seconds(value: float, low: float, tip: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setRange(low, MAX_LENGTH_S)
        spin.setDecimals(2)
        spin.setSuffix(" s")
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _update_frames(self, *_) -> None:

        self.frames_label.setText(f"{frame_count(self.length.value(), self.fps.currentData())} frames")

    def _browse(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, "Export video", self.path.text(), FILTERS)
        if path:
            asked = bool(Path(path).suffix)  # the dialog asked about the path it returned, not one we complete
            if not asked:
                path += ".gif" if chosen.startswith("GIF") else ".mp4"
            self.replace.chosen(path, asked)

    def job(self, state) -> VideoJob:
        return VideoJob(path=self.path.text().strip(), state=state, seconds=self.length.value(),
                        fps=float(self.fps.currentData()), size=self.size.currentData(), start=self.start_time())

    def start_time(self) -> float:
        """The start the box shows; the playhead's exact time while the box still shows it,
        so that the first frame is the very frame on the canvas."""
        shown = self.start.value()
        return self._playhead_s if shown == round(self._playhead_s, self.start.decimals()) else shown

    def problem(self) -> str | None:
        """What is wrong with the choices, or None (the same checks write_video makes)."""

        text = self.path.text().strip()
        if not text:
            return "Choose a file to export to."
        try:
            check_target(Path(text), float(self.fps.currentData()))
        except ExportError as exc:
            return str(exc)
        return None

    def _accept_if_valid(self) -> None:
        problem = self.problem()
        self.error.setText(problem or "")
        self.error.setVisible(problem is not None)
        if problem is None and self.replace.may_write():
            self.accept()


class ExportProgress(QDialog):
    """Frame n of N and the time left, with a Cancel that stays on screen ("Cancelling…")
    until the worker has stopped and removed its temporary file. Window-modal: no edits
    meanwhile (the worker is busy with the export). Esc or closing it cancels too."""

    cancelRequested = Signal()

    def __init__(self, name: str, total: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export video")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.label = QLabel(f"Exporting {name}…")
        self.bar = QProgressBar()
        self.bar.setRange(0, total)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.request_cancel)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel_button)
        column = QVBoxLayout(self)
        column.addWidget(self.label)
        column.addWidget(self.bar)
        column.addLayout(row)
        self.setMinimumWidth(460)
        self._finished = False

    def value(self) -> int:
        return self.bar.value()

    def maximum(self) -> int:
        return self.bar.maximum()

    def set_progress(self, done: int, text: str) -> None:
        if self.cancel_button.isEnabled():
            self.bar.setValue(done)
            self.label.setText(text)

    def request_cancel(self) -> None:
        if self.cancel_button.isEnabled():
            self.cancel_button.setEnabled(False)
            self.label.setText("Cancelling…")
            self.cancelRequested.emit()

    def finish(self) -> None:
        self._finished = True
        self.done(QDialog.DialogCode.Accepted)  # hides; close() would go through reject()

    def reject(self) -> None:  # Esc
        self.request_cancel()

    def closeEvent(self, event) -> None:
        if self._finished:
            super().closeEvent(event)
        else:
            event.ignore()
            self.request_cancel()


class VideoExporter(QObject):
    """Runs one export at a time and shows its progress; `finished(path, outcome)` with
    outcome "written", "cancelled" or "failed"."""

    finished = Signal(str, str)

    def __init__(self, window, worker):
        super().__init__(window)
        self.window, self.worker = window, worker
        self.progress: ExportProgress | None = None
        self.dialog: VideoExportDialog | None = None  # the last one opened (tests fill it in)
        self._id = 0
        self._job: VideoJob | None = None
        self._cancel = None
        self._started = 0.0
        worker.exportProgress.connect(self._on_progress)
        worker.exportFinished.connect(self._on_finished)

    @property
    def running(self) -> bool:
        return self._job is not None

    def ask(self) -> None:
        """Open the dialog (not blocking: window-modal, opened); export when it is accepted."""
        window = self.window
        document = window.document
        if document.state is None or self.running:
            return
        stem = Path(window.files.session_path).stem if window.files.session_path else "steergan"
        pb = window.playback
        # The video starts at the playhead: the frame on the canvas is its first. Paused, so
        # that the canvas stays on that frame while the dialog is open (playing on under it,
        # the frame on the canvas at Export was not the video's first).
        pb.pause()
        playhead = document.state.time
        dialog = VideoExportDialog(document.config.resolution, stem, pb.fps, pb.length_s, playhead, window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(lambda: self.start(dialog.job(document.state), window.files.generation))
        self.dialog = dialog
        dialog.open()

    def start(self, job: VideoJob, generation: int) -> None:

        if self.running:
            self.window.show_message("An export is already running")
            return
        self.window.playback.pause()  # the worker is the export's until it ends
        self._id += 1
        self._job, self._started = job, time.monotonic()
        total = frame_count(job.seconds, job.fps)
        dialog = ExportProgress(Path(job.path).name, total, self.window)
        dialog.cancelRequested.connect(self.cancel)
        dialog.show()
        self.progress = dialog
        self._cancel = self.worker.export_video(self._id, job, generation)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    @Slot(int, int, int)
    def _on_progress(self, export_id: int, done: int, total: int) -> None:
        if export_id != self._id or self.progress is None or self._cancel.is_set():
            return
        elapsed = time.monotonic() - self._started
        left = elapsed / done * (total - done)
        self.progress.set_progress(done, f"Exporting {Path(self._job.path).name}: frame {done} of {total}"
                                         f" — about {left:.0f} s left")

    @Slot(int, str, str)
    def _on_finished(self, export_id: int, outcome: str, message: str) -> None:
        if export_id != self._id or self._job is None:
            return
        path, self._job, self._cancel = self._job.path, None, None
        if self.progress is not None:
            self.progress.finish()
            self.progress.deleteLater()
            self.progress = None
        if outcome == "written":
            settings.put(FOLDER_KEY, str(Path(path).parent))
            self.window.show_message(f"Exported {message}")
        elif outcome == "cancelled":
            self.window.show_message(f"Export cancelled: {path} was not written")
        else:
            self.window.show_error("Cannot export video", message)
        self.finished.emit(path, outcome)
