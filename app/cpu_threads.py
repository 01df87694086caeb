"""The render worker's CPU threads follow the machine's load: the rule and why are in
models/tools/cpu_threads.py (shared with the relay); here it is re-checked every few seconds.
An explicit OMP_NUM_THREADS is the user's and wins."""
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

        want = threads_for_load(available_cpus(), load_average())
        if torch.get_num_threads() == want:
            return None
        torch.set_num_threads(want)
        return want


USER_SET_THREADS = "OMP_NUM_THREADS" in os.environ  # read at import, before anything sets it
