"""Issue 25, item 4: the render threads follow the machine's load."""
import torch

from app import cpu_threads
from app.cpu_threads import ThreadAdapter, threads_for_load


def test_threads_for_load():
    assert threads_for_load(2, 0.3) == 1  # one core for the GUI thread
    assert threads_for_load(8, 2.0) == 7
    assert threads_for_load(8, 9.5) == 1  # busier than its cores: one thread waits on nobody
    assert threads_for_load(1, None) == 1
    assert threads_for_load(4, None) == 3  # no load average (Windows): the idle choice


def test_adapter_rechecks_now_and_then_and_respects_the_user(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(cpu_threads, "available_cpus", lambda: 4)
        load = {"now": 0.5}
        monkeypatch.setattr(cpu_threads, "load_average", lambda: load["now"])
        torch.set_num_threads(2)
        adapter = ThreadAdapter(user_choice=False)
        assert adapter.adapt(now=100.0) == 3 and torch.get_num_threads() == 3
        load["now"] = 7.0
        assert adapter.adapt(now=101.0) is None  # not yet: re-checked every RECHECK_SECONDS
        assert adapter.adapt(now=100.0 + cpu_threads.RECHECK_SECONDS) == 1 and torch.get_num_threads() == 1
        assert adapter.adapt(now=200.0) is None  # unchanged: nothing set
        assert ThreadAdapter(user_choice=True).adapt(now=300.0) is None  # OMP_NUM_THREADS given: theirs
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
