"""How many CPU threads the model's renders use, chosen by how busy the machine is.

OpenMP threads of one render wait on each other at every parallel region: when other work
holds the cores, a render's second thread waits for a time slice and the whole render
waits for it. On this project's 2-core machine with a training run beside it (load average
6-7), `steergan bench` took 2,417 ms for a 128 px frame with 2 threads and 261 ms with 1
(issue 25). So: one core fewer than the machine has (the GUI thread paints while the worker
renders), and a single thread while the load average exceeds the cores, re-checked every
few seconds by the render worker. An explicit OMP_NUM_THREADS is the user's and wins.
"""
from __future__ import annotations

import os
import time

RECHECK_SECONDS = 5.0


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has none
        return None


def threads_for_load(cpus: int, load: float | None) -> int:
    """One core fewer than the machine's; one thread while the machine is busier than its
    cores (the 1-minute load average above the core count)."""
    base = max(1, cpus - 1)
    return 1 if load is not None and load > cpus else base


class ThreadAdapter:
    """Re-checks the load now and then and sets torch's thread count to match; the render
    worker calls `adapt()` before each render (cheap: one clock read between checks)."""

    def __init__(self, user_choice: bool | None = None):
        # The environment before configure_render_threads filled it in: the user's own choice.
        # STEERGAN_ADAPT_THREADS=0 keeps the start-up count (the test suite: a fixed count
        # keeps its renders comparable with the references it computes on its own thread).
        self.fixed = (USER_SET_THREADS or os.environ.get("STEERGAN_ADAPT_THREADS") == "0") if user_choice is None \
            else user_choice
        self._next = 0.0

    def adapt(self, now: float | None = None) -> int | None:
        """-> the thread count set now, or None when nothing changed or it is not ours to set."""
        now = time.monotonic() if now is None else now
        if self.fixed or now < self._next:
            return None
        self._next = now + RECHECK_SECONDS
        import torch

        want = threads_for_load(available_cpus(), load_average())
        if torch.get_num_threads() == want:
            return None
        torch.set_num_threads(want)
        return want


USER_SET_THREADS = "OMP_NUM_THREADS" in os.environ  # read at import, before anything sets it
