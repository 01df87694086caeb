"""A guard against a reference-count bug of some PySide6 builds on Python < 3.12.

PySide6 6.12 on CPython 3.11 returns None from void methods (setWindowTitle, update,
processEvents, ...) without taking a reference, so every such call lowers None's
reference count by one. Python 3.12+ made None, True and False immortal, which hides
the bug there; on 3.11 a GUI session makes tens of thousands of these calls and the
interpreter aborts with "Fatal Python error: none_dealloc".

We detect the bug (a few calls, measured) and, only then, give the three singletons a
reference count so large it can never reach zero: what 3.12 does for every program.
These objects are never freed in any correct program, so nothing else changes.
"""
from __future__ import annotations

import ctypes
import sys

PROBE_CALLS = 64
PIN = 1 << 40  # ~10^12 references: decades of void calls

_checked = False
pinned = False


def guard_singleton_refcounts() -> bool:
    """Pin None/True/False if this PySide6 leaks references to None. Returns whether it did."""
    global _checked, pinned
    if _checked:
        return pinned
    _checked = True
    if sys.version_info >= (3, 12):
        return False  # immortal singletons: the bug cannot hurt
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(PROBE_CALLS):
        probe.setObjectName("refcount-probe")  # a void method
    lost = before - sys.getrefcount(None)
    if lost < PROBE_CALLS // 2:
        return False
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += PIN
    pinned = True
    return True


# ---- garbage collection on the GUI thread only ---------------------------------------------
# Python's cyclic garbage collector runs in whichever thread happens to allocate when a
# threshold is crossed: with a render worker allocating tensors all the time, that is often
# the worker. A reference cycle holding Qt objects (a closed window, a replaced pyqtgraph
# item) is then deleted from the worker's thread while the GUI thread still uses the C++
# side (we saw QAbstractAnimation::setCurrentTime jump to a freed vtable). So automatic
# collection is switched off and a GUI-thread timer collects instead, generation by
# generation with the usual thresholds (pyqtgraph's GarbageCollector does the same).

COLLECT_INTERVAL_MS = 500
_collector = None


def collect_garbage_on_gui_thread() -> None:
    """Idempotent; call on the GUI thread once a QApplication exists."""
    global _collector
    import gc

    from PySide6.QtCore import QCoreApplication, QTimer

    gc.disable()
    if _collector is not None:
        return
    thresholds = gc.get_threshold()

    def collect() -> None:
        counts = gc.get_count()
        for generation in (2, 1, 0):  # the oldest generation due, which also sweeps the younger
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                break

    _collector = QTimer(QCoreApplication.instance(), interval=COLLECT_INTERVAL_MS)
    _collector.timeout.connect(collect)
    _collector.start()


def automatic_garbage_collection() -> None:
    """Back to Python's default (tests call this once their windows are gone)."""
    import gc

    gc.collect()
    gc.enable()
