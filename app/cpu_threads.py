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

from models.tools.cpu_threads import available_cpus, load_average, threads_for_load

__all__ = ["RECHECK_SECONDS", "ThreadAdapter", "available_cpus", "load_average", "threads_for_load"]

RECHECK_SECONDS = 5.0


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

        from app import cpu_threads  # looked up at call time: tests replace them here

        want = cpu_threads.threads_for_load(cpu_threads.available_cpus(), cpu_threads.load_average())
        if torch.get_num_threads() == want:
            return None
        torch.set_num_threads(want)
        return want


USER_SET_THREADS = "OMP_NUM_THREADS" in os.environ  # read at import, before anything sets it
