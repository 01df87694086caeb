"""`python -m app.screenshot_drag OUT.png [PATH]`: the README's screenshot of the studio
after a drag, with the MTM offset field on. Opens the window offscreen (default checkpoint,
or PATH), switches the offset field on (F), drags object 1 with real mouse events, waits
for the full frame of the final scene, and saves a grab of the whole window."""
from __future__ import annotations

import os
import sys

TIMEOUT_MS = 120_000


def wait_until(app, condition, what: str) -> None:
    from PySide6.QtCore import QDeadlineTimer, QEventLoop

    deadline = QDeadlineTimer(TIMEOUT_MS)
    while not condition():
        if deadline.hasExpired():
            raise SystemExit(f"screenshot_drag: error: no {what} after {TIMEOUT_MS // 1000} s")
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 50)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out, path = argv[0], (argv[1] if len(argv) > 1 else None)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .studio import configure_render_threads

    configure_render_threads()
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    from .bench_latency import make_app

    app, window = make_app(None, path)
    window.confirm_close = lambda: True  # the drag is for the picture, not an edit to keep
    window.resize(1320, 860)

    def full_frame_of_state():
        frame = window.canvas.frame
        return frame is not None and not frame.preview and window.canvas.frame_state == window.document.state

    wait_until(app, full_frame_of_state, "first frame")
    if not window.act_field.isEnabled():
        raise SystemExit("screenshot_drag: error: this checkpoint has no MTM offsets to show")
    QTest.keyClick(window, Qt.Key.Key_F)
    canvas, vp = window.canvas, window.canvas.viewport()
    obj = window.document.state.objects[0]
    start = canvas.to_widget(*obj.center).toPoint()
    end = canvas.to_widget(min(obj.center[0] + 0.25, 0.85), min(obj.center[1] + 0.15, 0.85)).toPoint()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, 13):
        QTest.mouseMove(vp, QPoint(start.x() + (end.x() - start.x()) * i // 12,
                                   start.y() + (end.y() - start.y()) * i // 12))
        QTest.qWait(16)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    wait_until(app, full_frame_of_state, "full frame after the drag")
    wait_until(app, lambda: window._extras_frame is None, "offset field")
    QTest.qWait(200)  # the side views' throttled refresh, and one more paint
    ok = window.grab().save(out)
    window.close()
    if not ok:
        print(f"screenshot_drag: error: {out}: cannot write this image", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
