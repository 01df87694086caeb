"""What a new user saw on screen (session 29's visual walk-through at 1280 x 800 and
1920 x 1080, Xvfb): each test fails without its fix in app/."""
import re

import numpy as np
from PySide6.QtCore import QRect
from PySide6.QtGui import QImage, QScreen
from PySide6.QtWidgets import QAbstractButton, QComboBox, QToolBar, QToolButton
from test_app_helpers import wait_for_current_frame

pytest_plugins = ["test_app_helpers"]


def test_the_first_window_fits_a_1280x800_screen(qtbot, make_window, monkeypatch):
    """It opened at 1320 x 860: on a 1280 x 800 laptop the status bar and the right edge of the
    panels ("New Sam", "Copy style.") were off the screen."""
    monkeypatch.setattr(QScreen, "availableGeometry", lambda self: QRect(0, 0, 1280, 800))
    w = make_window()
    assert w.width() <= 1280 and w.height() <= 800
    hint = w.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 800


def test_a_big_screen_still_gets_the_usual_size(qtbot, make_window, monkeypatch):
    monkeypatch.setattr(QScreen, "availableGeometry", lambda self: QRect(0, 0, 1920, 1080))
    w = make_window()
    assert (w.width(), w.height()) == (1320, 860)


def test_the_toolbar_does_not_move_when_an_edit_names_the_undo_step(qtbot, make_window, tiny_checkpoints):
    """The toolbar's Undo button read "Undo Move object 2 to (0.39, 0.72)": every button after
    it (New Sample, Offsets On, the overlays) jumped sideways at each edit."""
    w = make_window(tiny_checkpoints["rooms"][0])
    toolbar = w.findChild(QToolBar, "toolbar")
    undo, redo = toolbar.widgetForAction(w.act_undo), toolbar.widgetForAction(w.act_redo)
    before = [toolbar.widgetForAction(a).sizeHint().width() for a in toolbar.actions() if toolbar.widgetForAction(a)]
    w.document.new_sample(w.document.state.seed + 1)
    w.document.new_sample(w.document.state.seed + 1)
    w.document.undo_stack.undo()
    wait_for_current_frame(qtbot, w)
    assert (undo.text(), redo.text()) == ("Undo", "Redo")
    after = [toolbar.widgetForAction(a).sizeHint().width() for a in toolbar.actions() if toolbar.widgetForAction(a)]
    assert after == before
    # The menu and the tooltip still say which step, the tooltip with its keys as the others do.
    assert w.act_undo.text().replace("&", "").startswith("Undo New sample (seed")
    assert re.fullmatch(r"Undo New sample \(seed \d+\) \(Ctrl\+Z\)", undo.toolTip())
    assert re.fullmatch(r"Redo New sample \(seed \d+\) \(Ctrl\+Shift\+Z or Ctrl\+Y\)", redo.toolTip())


def _mean_colour(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes()).reshape(image.height(), -1)
    return rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3).astype(float).mean((0, 1))


def test_a_switch_that_is_on_looks_on(qtbot, make_window, tiny_checkpoints):
    """Offsets On / Offset Field in the MTM panel and Loop in the timeline: the one that was on
    was only a shade darker than the one that was off (mean colours 3-10 levels apart), so a
    user could not tell which was on. Now it is tinted, and keeps its size (no jitter)."""
    w = make_window(tiny_checkpoints["rooms"][0])
    w.act_offsets.setChecked(True)
    w.act_field.setChecked(False)
    qtbot.wait(50)
    on, off = (next(b for b in w.mtm_panel.findChildren(QToolButton) if b.defaultAction() is a)
               for a in (w.act_offsets, w.act_field))
    assert on.isChecked() and not off.isChecked()
    assert np.abs(_mean_colour(on) - _mean_colour(off)).max() >= 30
    size_off = off.sizeHint()
    w.act_field.setChecked(True)
    qtbot.wait(50)
    assert off.sizeHint() == size_off


def test_panel_buttons_use_the_menus_capitalisation(qtbot, make_window, tiny_checkpoints):
    """"New style" and "Copy style…" sat under "New Sample" (and beside "Offsets On", "New
    Motion"): the panels' own buttons now say their words as the menus and toolbar do. A
    tooltip that quotes a button quotes it as it reads ("on "New sample"" said the Lock box)."""
    w = make_window(tiny_checkpoints["rooms"][0])
    labels = [b.text() for b in w.findChildren(QAbstractButton) if b.text()]
    labels += [c.itemText(0) for c in w.objects_panel.findChildren(QComboBox) if c.itemText(0).endswith("…")]
    assert "New Style" in labels and "Copy Style…" in labels
    for label in labels:
        for word in re.findall(r"[A-Za-z]{4,}", label.replace("&", "")):
            assert word[0].isupper(), f"{label!r}: {word!r}"
    for widget in w.findChildren(QAbstractButton):
        for quoted in re.findall(r'"([^"]+)"', widget.toolTip()):
            assert quoted in labels, f"{widget.toolTip()!r} quotes {quoted!r}"
