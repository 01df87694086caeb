"""The render queue's rules (app/render_queue.py), driven without Qt: which job the worker
takes next, coalescing to the newest, clips and traces only when nothing else waits, stop."""
import gc
import subprocess
import sys
import threading
import time
import weakref

import pytest

from app.render_queue import RenderQueue


def test_the_queue_needs_no_qt():
    code = ("import sys; sys.modules['PySide6'] = sys.modules['pyqtgraph'] = None\n"  # as if not installed
            "import app.render_queue; print('imported')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr[-2000:]


def drain(queue):
    """Take jobs until the queue says "nothing left"; (kind, args) of each, in order."""
    taken = []
    while (job := queue.take()) is not None:
        taken.append((job.kind, job.args))
        queue.done(job)
    return taken


def test_the_newest_render_replaces_the_older_ones():
    queue = RenderQueue()
    for request_id in range(1, 101):
        queue.submit("render", ("state", request_id))
    assert drain(queue) == [("render", ("state", 100))]


def test_jobs_in_different_slots_run_in_submission_order():
    queue = RenderQueue()
    queue.submit("render", ("r", 1))
    queue.submit("load", ("l", 1))
    queue.submit("export", ("e", 1))
    assert [kind for kind, _ in drain(queue)] == ["render", "load", "export"]
    queue.submit("load", ("l", 2))
    queue.submit("render", ("r", 2))
    assert [kind for kind, _ in drain(queue)] == ["load", "render"]


def test_a_replaced_job_takes_the_newer_ones_place_in_the_order():
    queue = RenderQueue()
    queue.submit("render", ("r", 1))
    queue.submit("load", ("l", 1))
    queue.submit("render", ("r", 2))  # asked for after the load now: runs after it
    assert drain(queue) == [("load", ("l", 1)), ("render", ("r", 2))]


def test_any_render_load_or_export_goes_before_the_next_clip_frame():
    queue = RenderQueue()
    queue.set_clip(3, "scene", [0.04, 0.08, 0.12, 0.16], generation=7)
    order = [queue.take().args]
    for kind in ("render", "load", "export"):  # each arrives while a frame ahead renders
        queue.submit(kind, (kind,))
        order += [queue.take().args, queue.take().args]
    assert order == [(3, "scene", 0.04, 7), ("render",), (3, "scene", 0.08, 7), ("load",),
                     (3, "scene", 0.12, 7), ("export",), (3, "scene", 0.16, 7)]
    assert queue.take() is None  # every frame rendered: the clip is gone


def test_a_newer_clip_replaces_the_older_and_cancel_only_drops_the_clip_it_names():
    queue = RenderQueue()
    queue.set_clip(3, "old", [0.04, 0.08, 0.12], generation=7)
    assert queue.take().args == (3, "old", 0.04, 7)
    queue.set_clip(4, "new", [0.04, 0.08], generation=7)
    queue.cancel_clip(3)  # the old clip's failure arriving late: the new clip stays
    assert drain(queue) == [("clip", (4, "new", 0.04, 7)), ("clip", (4, "new", 0.08, 7))]
    queue.set_clip(5, "next", [0.04, 0.08], generation=7)
    queue.cancel_clip(5)
    assert drain(queue) == []
    queue.set_clip(6, "any", [0.04], generation=7)
    queue.cancel_clip()  # no id: whatever clip there is
    assert drain(queue) == []
    assert queue.set_clip(7, "none", [], generation=7) is False and drain(queue) == []


def test_traces_run_only_when_nothing_else_waits_and_a_new_plan_replaces_the_old():
    queue = RenderQueue()
    queue.plan_traces([("s1", None), ("s1", 16)])
    queue.submit("render", ("r", 1))
    queue.set_clip(3, "scene", [0.04], generation=7)
    assert [queue.take().kind for _ in range(2)] == ["render", "clip"]
    assert queue.take().args == ("s1", None)
    queue.submit("render", ("r", 2))  # an edit between two traces goes first
    assert queue.take().kind == "render"
    queue.plan_traces([("s2", None)])  # the newest state's plan: s1's last trace is dropped
    assert drain(queue) == [("trace", ("s2", None))]


class Scene:
    """A stand-in for a SceneState that a weak reference can watch."""


def test_after_stop_nothing_is_taken_and_pending_jobs_are_dropped():
    queue = RenderQueue()
    scenes = [Scene() for _ in range(4)]
    queue.submit("render", (scenes[0], 1))
    queue.submit("load", (scenes[1], 1))
    queue.set_clip(3, scenes[2], [0.04], generation=7)
    queue.plan_traces([(scenes[3], None)])
    queue.stop()
    assert queue.take() is None
    refs = [weakref.ref(scene) for scene in scenes]
    del scenes
    gc.collect()
    assert all(ref() is None for ref in refs)  # dropped, not just skipped: nothing kept alive
    queue.submit("render", ("r", 2))  # a request racing the window's close
    assert queue.take() is None


def test_stop_cancels_the_export_in_progress_and_only_that():
    queue = RenderQueue()
    running, waiting = threading.Event(), threading.Event()
    queue.submit("export", ("e", 1), cancel=running)
    job = queue.take()
    queue.done(job)  # finished: stopping later cannot cancel it
    queue.submit("export", ("e", 2), cancel=running)
    queue.take()  # in progress
    queue.submit("export", ("e", 3), cancel=waiting)
    queue.stop()
    assert running.is_set() and not waiting.is_set()
    finished = threading.Event()
    other = RenderQueue()
    other.submit("export", ("e", 4), cancel=finished)
    other.done(other.take())
    other.stop()
    assert not finished.is_set()


def test_the_consumer_is_woken_only_when_idle():
    queue = RenderQueue()
    assert queue.submit("render", ("r", 1)) is True  # idle: wake it
    assert queue.submit("load", ("l", 1)) is False  # woken already: it will find this one
    assert queue.set_clip(3, "scene", [0.04], generation=7) is False
    assert len(drain(queue)) == 3  # the last take() said "nothing left": idle again
    assert queue.set_clip(4, "scene", [0.04], generation=7) is True
    drain(queue)
    queue.plan_traces([("s", None)])  # the consumer plans while it drains: never a wake
    assert queue.submit("render", ("r", 2)) is True


def test_unknown_kinds_are_refused():
    with pytest.raises(ValueError):
        RenderQueue().submit("clip", ())


def test_concurrent_submits_lose_no_newest_job():
    """Three producer threads (one per slot) and a consumer that, like the worker, drains
    only when woken: every kind's last job is taken, and no kind ever goes back in time."""
    queue, n = RenderQueue(), 2000
    wakes = threading.Semaphore(0)
    taken = {kind: [] for kind in ("render", "load", "export")}
    finished = threading.Event()

    def produce(kind):
        for i in range(n):
            if queue.submit(kind, (i,)):
                wakes.release()

    def consume():
        while not finished.is_set():
            if wakes.acquire(timeout=0.01):  # woken: take until the queue says "nothing left"
                while (job := queue.take()) is not None:
                    taken[job.kind].append(job.args[0])
                    queue.done(job)

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [threading.Thread(target=produce, args=(kind,)) for kind in taken]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    # The wakes already given must be enough: the consumer takes each last job by itself.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(seen[-1:] == [n - 1] for seen in taken.values()):
        time.sleep(0.005)
    finished.set()
    consumer.join(10)
    for kind, seen in taken.items():
        assert seen[-1:] == [n - 1], kind
        assert seen == sorted(set(seen)), kind  # never an older job after a newer one, never twice
    assert queue.take() is None


def test_idle_only_when_nothing_waits_or_runs():
    queue = RenderQueue()
    assert queue.idle()
    queue.submit("render", ("state",))
    assert not queue.idle()
    job = queue.take()
    queue.plan_traces([("state", None)])
    queue.done(job)
    assert not queue.idle()  # the consumer has not yet seen that nothing but a trace is left
    trace = queue.take()
    assert trace.kind == "trace" and not queue.idle()
    queue.done(trace)
    assert queue.take() is None and queue.idle()
