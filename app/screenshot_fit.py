"""`python -m app.screenshot_fit OUT_PREFIX PICTURE [PATH]`: the README's screenshots of
Open Image. Opens the studio offscreen (default checkpoint, or PATH), fits PICTURE with
Ctrl+I's code path, and saves OUT_PREFIX-dialog.png (the progress dialog mid-fit),
OUT_PREFIX.png (the window on the fitted scene) and OUT_PREFIX-overlay.png (View > Show
Fitted Picture on, by its key P)."""
from __future__ import annotations

import os
import sys

from .screenshot_drag import wait_until


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    prefix, picture, path = argv[0], argv[1], (argv[2] if len(argv) > 2 else None)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from .studio import configure_render_threads

    configure_render_threads()
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from .bench_latency import make_app

    app, window = make_app(None, path)
    window.confirm_close = lambda: True
    window.resize(1320, 860)
    wait_until(app, lambda: window.canvas.frame is not None, "first frame")
    fitter = window.fitter
    outcome: list[str] = []
    fitter.finished.connect(lambda _path, result: outcome.append(result))
    if not fitter.start(picture):
        raise SystemExit("screenshot_fit: error: the fit did not start (see the status bar)")
    shots = 0

    wait_until(app, lambda: fitter.progress is not None and fitter.progress.isVisible(), "progress dialog")
    # Well into the fit, the live reconstruction has taken shape. (Not QTest.qWait: it holds
    # Python's GIL while it waits, so the worker thread could not fit meanwhile.)
    wait_until(app, lambda: fitter.progress is None or fitter.progress.step >= 150, "fit steps")
    if fitter.progress is not None:
        shots += fitter.progress.grab().save(f"{prefix}-dialog.png")
    wait_until(app, lambda: bool(outcome), "end of the fit")
    if outcome[0] != "fitted":
        raise SystemExit(f"screenshot_fit: error: the fit ended {outcome[0]}")
    wait_until(app, lambda: window.canvas.frame_state == window.document.state, "fitted frame")
    QTest.qWait(300)
    shots += window.grab().save(f"{prefix}.png")
    window.activateWindow()
    QTest.keyClick(window, Qt.Key.Key_P)
    QTest.qWait(300)
    shots += window.grab().save(f"{prefix}-overlay.png")
    window.close()
    print(f"wrote {shots} screenshots to {prefix}*.png")
    return 0 if shots == 3 else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
