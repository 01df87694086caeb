"""Image export: the frame at native size or upscaled, or a grab of the canvas with its
overlays at that size. Writes are atomic (models.document.fileio.write_image): a failed export
leaves no half-written file and nothing in the scene changes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
)

from models.document.fileio import write_image

from . import settings

FOLDER_KEY = "export/folder"
FILTERS = "PNG image (*.png);;JPEG image (*.jpg *.jpeg);;WebP image (*.webp)"
SCALES = (1, 2, 4, 8)


@dataclass(frozen=True)
class ExportOptions:
    path: str
    size: int | None = None  # None: native size
    overlays: bool = False  # a grab of the canvas (image + visible overlays) instead of the frame
    smooth: bool = True  # Lanczos upscaling; off: nearest neighbour, crisp pixels


def export_image(options: ExportOptions, frame_image, grab_canvas) -> None:
    """Write the frame (or the canvas grab) as options say. Raises ExportError."""
    from models.render import resize_image

    native = frame_image.shape[0]
    size = options.size or native
    if options.overlays:
        image = grab_canvas(size)
    elif size != native:
        image = resize_image(frame_image, size, smooth=options.smooth)
    else:
        image = frame_image
    write_image(options.path, image)
    settings.put(FOLDER_KEY, str(Path(options.path).parent))


def default_export_path(stem: str, suffix: str = ".png") -> str:
    """The last export folder's first free name (stem, stem-2, ...): exporting again with the
    name offered never replaces the last export."""
    folder = Path(settings.text(FOLDER_KEY) or str(Path.home()))
    path, n = folder / f"{stem}{suffix}", 1
    while _exists(path) and n < 1000:
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return str(path)


def _exists(path: Path, file: bool = False) -> bool:
    try:
        return path.is_file() if file else path.exists()
    except OSError:  # unreadable folder: the write will say what is wrong
        return False


class ReplaceGuard:
    """An export dialog asks before it replaces a file, beside its fields (not in a second
    modal box): the first Save on a path that exists names the file and becomes "Replace"; a
    second (the same path) goes ahead. A path chosen with Browse… was asked about there."""

    def __init__(self, path_edit: QLineEdit, button, note: QLabel):
        self.path_edit, self.button, self.note = path_edit, button, note
        self.label = button.text()
        self.confirmed: str | None = None
        path_edit.textEdited.connect(self._path_edited)

    def chosen(self, path: str, asked: bool = True) -> None:
        """Browse… returned `path`; `asked`: its dialog asked before replacing that very path."""
        self.path_edit.setText(path)
        self._path_edited()
        self.confirmed = path if asked else None

    def _path_edited(self, *_) -> None:
        self.confirmed = None
        self.note.hide()
        self.button.setText(self.label)

    def may_write(self) -> bool:
        text = self.path_edit.text().strip()
        if text == self.confirmed or not _exists(Path(text), file=True):  # (a folder there: the write says so)
            return True
        self.confirmed = text
        self.note.setText(f"{Path(text).name} already exists in {Path(text).parent}: Replace writes over it;"
                          " or choose another name.")
        self.note.show()
        self.button.setText("Replace")
        self.note.window().adjustSize()  # room for the note's lines (the dialog does not grow by itself)
        return False


def path_row(line_edit: QLineEdit, browse) -> QHBoxLayout:
    """The file field of an export dialog, with its Browse… button."""
    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    row = QHBoxLayout()
    row.addWidget(line_edit, 1)
    row.addWidget(button)
    return row


def size_choices(native: int, scales) -> QComboBox:
    """Native size and its multiples; the item data is the size, None for native."""
    combo = QComboBox()
    for scale in scales:
        label = f"{native * scale} × {native * scale}" + (" (native)" if scale == 1 else f" (×{scale})")
        combo.addItem(label, None if scale == 1 else native * scale)
    return combo


class ExportDialog(QDialog):
    def __init__(self, native: int, stem: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export image")
        self.path = QLineEdit(default_export_path(stem))
        self.size = size_choices(native, SCALES)
        self.smooth = QCheckBox("Smooth upscaling (Lanczos); off keeps pixels crisp")
        self.smooth.setChecked(True)
        self.overlays = QCheckBox("Include the visible overlays (handles, grid, offsets)")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.hide()
        self.replace = ReplaceGuard(self.path, self.save_button, self.note)
        buttons.accepted.connect(self._accept_unless_asking)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("File", path_row(self.path, self._browse))
        form.addRow("Size", self.size)
        form.addRow("", self.smooth)
        form.addRow("", self.overlays)
        form.addRow(self.note)
        form.addRow(buttons)
        self.resize(520, self.sizeHint().height())

    def _accept_unless_asking(self) -> None:
        if self.replace.may_write():
            self.accept()

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export image", self.path.text(), FILTERS)
        if path:
            self.replace.chosen(path)

    def options(self) -> ExportOptions:
        return ExportOptions(self.path.text().strip(), self.size.currentData(), self.overlays.isChecked(),
                             self.smooth.isChecked())
