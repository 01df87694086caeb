"""Look and feel: one dark palette for the widgets and the pyqtgraph views, and the colours
that tie an object's handle, heatmap view and panel row together."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

# An image editor wants a neutral, dark surround so the picture's own colours read true.
BACKGROUND = "#1b1d21"
PANEL = "#25282d"
RAISED = "#2f3238"
TEXT = "#d8dade"
MUTED = "#8b9098"
ACCENT = "#4c9bea"
# A switch that is on (Offsets On, Offset Field, Loop): Fusion's checked button was only a
# shade darker than an unchecked one, so on this palette neither told which state it was in.
CHECKED = "#2c4a6b"

# Object colours (colour-blind-friendly Okabe-Ito order), then repeat.
OBJECT_COLOURS = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#ffffff")
# Hierarchy levels 0/1/2 (coarse to fine).
LEVEL_COLOURS = ("#ffffff", "#e69f00", "#56b4e9")
OFFSET_COLOUR = "#7ee0ff"
DIFF_COLOUR = (255, 64, 96)


def object_colour(index: int) -> QColor:
    return QColor(OBJECT_COLOURS[index % len(OBJECT_COLOURS)])


def configure_pyqtgraph() -> None:
    import pyqtgraph as pg

    # row-major: a Frame image [H, W, 3] goes to an ImageItem as it is, no transpose copy.
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background=BACKGROUND, foreground=MUTED)


def apply_dark_palette(app: QApplication) -> None:
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: PANEL, QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BACKGROUND, QPalette.ColorRole.AlternateBase: RAISED,
        QPalette.ColorRole.Text: TEXT, QPalette.ColorRole.Button: RAISED,
        QPalette.ColorRole.ButtonText: TEXT, QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: RAISED,
        QPalette.ColorRole.ToolTipText: TEXT, QPalette.ColorRole.PlaceholderText: MUTED,
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(MUTED))
    app.setPalette(pal)
    app.setStyleSheet(f"""
        QDockWidget {{ font-weight: 600; }}
        QDockWidget::title {{ background: {RAISED}; padding: 5px 8px; }}
        QGroupBox {{ border: 1px solid {RAISED}; border-radius: 4px; margin-top: 14px; padding-top: 6px; }}
        QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; color: {MUTED}; }}
        QStatusBar {{ background: {BACKGROUND}; color: {MUTED}; }}
        QStatusBar QLabel {{ padding: 0 8px; }}
        QToolTip {{ border: 1px solid {RAISED}; }}
        QToolButton:checked {{ background: {CHECKED}; border: 1px solid {ACCENT}; border-radius: 3px;
                               padding: 1px 1px 1px 2px; }}  /* the size Fusion gives it unchecked */
        QToolButton:checked:disabled {{ background: {RAISED}; border-color: {MUTED}; }}  /* no grid to show */
    """)
