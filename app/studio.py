"""`steergan [checkpoint|session]`: the studio window. `--screenshot OUT.png` opens it
offscreen, waits for the first frame, saves a grab of the whole window and exits."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SCREENSHOT_TIMEOUT_S = 120.0


def configure_render_threads() -> None:
    """How torch's CPU threads behave in the studio (and in `steergan render/video`, so
    their pixels match the studio's). Must run before torch is imported: libgomp and
    torch read these once. An explicit OMP_NUM_THREADS / OMP_WAIT_POLICY wins.

    - Idle OpenMP threads sleep instead of spinning: the studio shares the CPU with its
      own GUI thread (and often a training run); spinning threads steal the time slices
      their team-mates wait for, and a 30 ms render took 2 s on a 2-core machine.
    - One core fewer than the machine has: the GUI thread paints handles and frames while
      the worker renders. On the 2-core machine this project runs on, one render thread
      instead of two took a drag step from 42 to 32 ms (p50) and a 60 Hz drag from 79 to
      58 ms (`python -m app.bench_latency`). The thread count can change a rare pixel by
      one level (float sums in another order), so the CLI's renders use the same count."""
    from .cpu_threads import available_cpus, load_average, threads_for_load

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Fewer threads on a busy machine (app/cpu_threads.py); the render worker re-checks.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_for_load(available_cpus(), load_average())))
    keep_freed_memory()


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc's malloc.h)


def keep_freed_memory() -> None:
    """glibc's malloc hands every block over 128 KiB back to the kernel when it is freed,
    so each frame's activations are fresh pages again: page faults took the 128 px full
    frame from 55 to 64 ms (best of 25, 2 cores; measured with the same two settings given
    as GLIBC_TUNABLES). Blocks up to 64 MiB now stay in the heap for the next frame (what a
    render needs is a few MiB). Other C libraries: nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 64 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)
    except (OSError, AttributeError):  # musl and others: no mallopt
        pass


SUBCOMMAND_HELP = (  # `steergan --help` lists them all (app/cli.py defines them)
    ("render", "render a scene to an image, headlessly"),
    ("video", "render a scene over time to an MP4 or GIF, headlessly"),
    ("bench", "time one render per architecture; prints JSON"),
    ("info", "print a checkpoint's description as JSON"),
    ("train", "train a generator on procedural data (torchrun for several GPUs)"),
    ("eval", "measure a checkpoint's steering metrics; prints JSON"),
    ("relay", "train the bundled CPU models in the background while you work (start/status/finish)"),
    ("fit", "fit a generator to a picture: a scene whose objects you can then drag"),
)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("steergan-studio")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  steergan {name:<7} {text}" for name, text in SUBCOMMAND_HELP)
    parser = argparse.ArgumentParser(
        prog="steergan", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="SteerGAN Studio: edit what spatially steerable GANs generate. Without a"
                    " subcommand, opens the studio window.",
        epilog=f"subcommands (`steergan COMMAND --help` for their options):\n{commands}")
    parser.add_argument("--version", action="version", version=f"steergan {version()}")
    parser.add_argument("path", nargs="?", help="a checkpoint (.safetensors) or a session (.json) to open, or a"
                                                " picture (PNG, JPEG, ...) to fit; default: the bundled checkpoint")
    parser.add_argument("--arch", help="open an untrained model of a built-in architecture instead")
    parser.add_argument("--screenshot", metavar="OUT.png",
                        help="open offscreen, wait for the first frame, save a grab of the window, exit")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also write the log (errors with their tracebacks) to stderr; the log file is"
                             " steergan.log in the app's data folder ($STEERGAN_LOG_DIR to move it)")
    return parser


def configure_app(app) -> None:
    from PySide6.QtCore import QCoreApplication

    from . import qt_compat, settings, theme

    qt_compat.guard_singleton_refcounts()
    if not QCoreApplication.organizationName():  # tests set their own names first
        QCoreApplication.setOrganizationName(settings.ORGANIZATION)
        QCoreApplication.setApplicationName(settings.APPLICATION)
    theme.configure_pyqtgraph()
    theme.apply_dark_palette(app)
    icon = Path(__file__).resolve().parent.parent / "assets" / "icon.svg"
    if icon.exists():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))


def launch(argv: list[str]) -> int:
    configure_render_threads()
    args = build_parser().parse_args(argv)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # must precede the QApplication
    from .platform_check import check_display, check_xcb

    # Before Qt is loaded: Qt would abort, naming the wrong library.
    problem = check_display() or check_xcb()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:
        print(f"steergan: the studio needs PySide6 and pyqtgraph ({exc}); `steergan render` works"
              " without them", file=sys.stderr)
        return 1

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "steergan"])
    configure_app(app)
    start_log(args.verbose)
    from .main_window import MainWindow

    window = MainWindow(remember_layout=not args.screenshot)
    open_initial(window, args.path, args.arch)
    if args.screenshot:  # autosaves nothing
        return take_screenshot(app, window, args.screenshot)
    window.show()
    # Once the window shows: an autosave folder that cannot be written is said over it.
    recovered = window.autosaver.start()
    if recovered is not None:
        offer_restore(window, recovered)
    return app.exec()


def start_log(verbose: bool) -> None:
    """The log file (app/logs.py), once the app's name (and so its data folder) is set."""
    import logging

    from .logs import configure_logging

    configure_logging(verbose=verbose)
    # Marks where each run begins in a file that several runs share.
    logging.getLogger("steergan.studio").info("SteerGAN Studio %s started (pid %d)", version(), os.getpid())


def open_initial(window, path: str | None, arch: str | None) -> None:
    if path:  # a file that cannot be opened: the error says why, and the default opens instead
        window.files.open_path(path, fallback=True)
    else:
        window.files.open_checkpoint(None, arch=arch)


def offer_restore(window, recovered: Path) -> None:
    """After a crash: ask (without blocking) whether to bring the autosaved scene back."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Question, "Restore the last scene?",
                      "SteerGAN Studio did not exit cleanly last time. Restore the scene it autosaved?",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, window)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    # The scene comes back unsaved: the autosave file is the studio's, not a place to Save to.
    box.accepted.connect(lambda: window.files.open_session(recovered, recovered=True))
    # Kept until it is restored or declined: a restore that fails leaves it for the next start.
    window.files.recoveredRestored.connect(window.autosaver.settle_recovered)
    box.rejected.connect(window.autosaver.settle_recovered)
    window.restore_prompt = box
    box.open()


def take_screenshot(app, window, out: str) -> int:
    """Show the window, wait (event loop running) for the first frame, grab, save, exit."""
    from PySide6.QtCore import QEventLoop, QTimer

    from .main_window import DEFAULT_SIZE

    window.resize(DEFAULT_SIZE)  # the usual layout, not one shrunk to the offscreen screen
    window.show()
    loop = QEventLoop()
    outcome: dict[str, str] = {}
    window.frameShown.connect(lambda _: loop.quit())
    window.errorShown.connect(lambda title, msg: (outcome.setdefault("error", msg), loop.quit()))
    QTimer.singleShot(int(SCREENSHOT_TIMEOUT_S * 1000),
                      lambda: (outcome.setdefault("error", "no frame after"
                                                  f" {SCREENSHOT_TIMEOUT_S:.0f} s"), loop.quit()))
    if window.canvas.frame is None:
        loop.exec()
    code = 0
    if "error" in outcome:
        print(f"steergan --screenshot: error: {outcome['error']}", file=sys.stderr)
        code = 2
    else:
        app.processEvents()  # let the docks lay out around the first frame
        if window.grab().save(out):
            print(f"wrote {out} ({window.width()}x{window.height()})")
        else:
            print(f"steergan --screenshot: error: {out}: cannot write this image", file=sys.stderr)
            code = 2
    window.close()
    return code


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
