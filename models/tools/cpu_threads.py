"""How many CPU threads torch should use, by how busy the machine is (torch-free).

OpenMP threads wait on each other at every parallel region: when other work holds the
cores, a second thread makes a render or a training step slower, not faster (issue 25:
a 128 px render took 2,417 ms with 2 threads and 261 ms with 1 at load average 6-7; the
relay's training step fell from 17 to 1.3 images/s with 2 threads beside a test run).
The studio's render worker (app/cpu_threads.py) and the relay (models/training/relay.py)
both follow this rule.
"""
from __future__ import annotations

import os


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


def threads_for_load(cpus: int, load: float | None, idle_threads: int | None = None) -> int:
    """`idle_threads` (default: one core fewer than the machine's, for the GUI thread) while
    the machine is idle enough; one thread while it is busier than its cores (the 1-minute
    load average above the core count)."""
    base = max(1, cpus - 1) if idle_threads is None else max(1, idle_threads)
    return 1 if load is not None and load > cpus else base
