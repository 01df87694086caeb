"""The render worker: coalescing, stale requests, loading off the GUI thread, GPU OOM fallback,
frames rendered ahead for playback."""
import threading
from dataclasses import replace

import numpy as np
import torch
from PySide6.QtCore import QObject, Slot
from test_app_helpers import assert_shows_render_of, render_failing_once, wait_for_current_frame

from app.render_worker import RenderWorker, default_render, start_worker, stop_worker
from models.document.scene import initial_state

pytest_plugins = ["test_app_helpers"]  # the studio fixtures: studio_env, tiny_checkpoints, make_window


class GatedRender:
    """A render function that waits for the test's go-ahead, and records what it rendered."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = threading.Event()
        self.rendered = []
        self.states = []
        self.threads = set()

    def __call__(self, generator, state):
        self.threads.add(threading.get_ident())
        self.started.set()
        self.gate.wait(20)
        self.rendered.append(state.seed)
        self.states.append(state)
        return default_render(generator, state)


class Collector(QObject):
    """Receives the worker's signals on the GUI thread (queued), as the window does."""

    def __init__(self, worker):
        super().__init__()
        self.frames, self.infos, self.clip = [], [], []
        worker.frameReady.connect(self.on_frame)
        worker.loaded.connect(self.on_loaded)
        worker.clipFrameReady.connect(self.on_clip_frame)

    @Slot(int, object, float)
    def on_frame(self, request_id, frame, ms):
        self.frames.append((request_id, frame))

    @Slot(int, object, object, float)
    def on_clip_frame(self, clip_id, state, frame, ms):
        assert threading.current_thread() is threading.main_thread()
        self.clip.append((clip_id, state, frame))

    @Slot(int, object)
    def on_loaded(self, token, info):
        self.infos.append(info)

    def ids(self):
        return [rid for rid, _ in self.frames]


def loaded_worker(qtbot, render_fn, path):
    worker = RenderWorker(device="cpu", render_fn=render_fn)
    thread = start_worker(worker)
    got = Collector(worker)
    worker.load(7, str(path), None)
    qtbot.waitUntil(lambda: len(got.infos) == 1, timeout=20000)
    return worker, thread, got


def test_only_the_newest_pending_request_is_rendered(qtbot, studio_env, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    gated = GatedRender()
    worker, thread, got = loaded_worker(qtbot, gated, path)
    base = initial_state(got.infos[0].config, 0)
    worker.request(base, 1, 7)
    assert gated.started.wait(20)  # request 1 is being rendered; 2..200 pile up meanwhile
    for rid in range(2, 201):
        worker.request(base.new_sample(rid), rid, 7)
    gated.gate.set()
    qtbot.waitUntil(lambda: got.ids()[-1:] == [200], timeout=20000)
    assert got.ids() == [1, 200] and gated.rendered == [0, 200]
    assert np.array_equal(got.frames[-1][1].image, default_render(g, base.new_sample(200)).image)
    assert gated.threads and threading.get_ident() not in gated.threads  # never on the GUI thread
    stop_worker(worker, thread)


def test_requests_for_another_generator_are_dropped(qtbot, studio_env, tiny_checkpoints):
    path, _ = tiny_checkpoints["rooms"]
    worker, thread, got = loaded_worker(qtbot, None, path)
    state = initial_state(got.infos[0].config, 0)
    worker.request(state, 1, generation=6)  # made for a model that is not loaded: stale
    worker.request(state, 2, generation=7)
    qtbot.waitUntil(lambda: got.ids() == [2], timeout=20000)
    stop_worker(worker, thread)


def test_loading_runs_on_the_worker_thread_with_a_busy_indicator(qtbot, make_window, tiny_checkpoints, monkeypatch):
    import models.io.library

    real_open, seen = models.io.library.open_generator, {}
    gate = threading.Event()

    def slow_open(*args, **kwargs):
        seen["thread"] = threading.get_ident()
        gate.wait(20)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(models.io.library, "open_generator", slow_open)
    w = make_window()
    w.files.open_checkpoint(tiny_checkpoints["figures"][0])
    qtbot.waitUntil(lambda: "thread" in seen, timeout=20000)
    assert w.busy.isVisible() and w.files.loading  # the GUI runs on while the worker loads
    assert seen["thread"] != threading.get_ident()
    gate.set()
    wait_for_current_frame(qtbot, w)
    assert not w.busy.isVisible() and w.document.config.hierarchical


def test_gpu_out_of_memory_falls_back_to_the_cpu_and_says_so(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    failures = {"left": 0}

    def oom_once(generator, state):
        if failures["left"]:
            failures["left"] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return default_render(generator, state)

    worker = RenderWorker(device="cpu", render_fn=oom_once)
    w = make_window(path, worker=worker)
    worker.device = torch.device("cuda")  # pretend the model sits on a GPU from now on
    failures["left"] = 1
    w.document.new_sample(3)
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)
    assert worker.device.type == "cpu" and w.device_label.text() == "CPU (GPU out of memory)"
    assert "out of memory" in w.statusBar().currentMessage()


def test_render_errors_are_reported_not_fatal(qtbot, make_window, tiny_checkpoints):
    path, g = tiny_checkpoints["rooms"]
    w = make_window(path, worker=RenderWorker(device="cpu", render_fn=render_failing_once()))
    w.document.new_sample(11)
    qtbot.waitUntil(lambda: "injected failure" in w.statusBar().currentMessage(), timeout=20000)
    w.document.new_sample(12)
    wait_for_current_frame(qtbot, w)
    assert_shows_render_of(w, g)


def test_a_render_goes_before_the_frames_rendered_ahead(qtbot, studio_env, tiny_checkpoints):
    path, g = tiny_checkpoints["clips"]
    gated = GatedRender()
    worker, thread, got = loaded_worker(qtbot, gated, path)
    clip = got.clip
    base = initial_state(got.infos[0].config, 0)
    ahead = [replace(base, time=i / 25) for i in range(1, 9)]
    worker.request_clip(base, [s.time for s in ahead], 3, 7)
    assert gated.started.wait(20)  # the first frame ahead is being rendered
    edited = base.new_sample(5)
    worker.request(edited, 1, 7)  # an edit meanwhile
    worker.request_clip(edited, [i / 25 for i in range(1, 4)], 4, 7)  # and its frames ahead
    gated.gate.set()
    qtbot.waitUntil(lambda: len(clip) == 4, timeout=20000)
    assert gated.states[:2] == [ahead[0], edited], "the edit's frame comes right after the frame in progress"
    assert [c for c, _, _ in clip] == [3, 4, 4, 4]  # the stale clip was dropped, the new one ran in order
    assert [s.time for _, s, _ in clip[1:]] == [1 / 25, 2 / 25, 3 / 25]
    for _, state, frame in clip:
        assert np.array_equal(frame.image, default_render(g, state).image)
    stop_worker(worker, thread)


def test_the_worker_traces_the_newest_structure_when_idle_and_renders_through_it(qtbot, studio_env,
                                                                               tiny_checkpoints):
    from models.render import latents_for
    from models.synthesis import has_trace

    path, g = tiny_checkpoints["rooms"]
    worker = RenderWorker(device="cpu")
    worker.trace_when_idle, worker.trace_previews = True, (16, 64)  # 64: not below 32 px, never traced
    thread = start_worker(worker)
    got = Collector(worker)
    worker.load(7, str(path), None)
    qtbot.waitUntil(lambda: len(got.infos) == 1, timeout=20000)
    state = replace(initial_state(got.infos[0].config, 5), truncation=0.6)
    worker.request(state, 1, 7)
    qtbot.waitUntil(lambda: got.ids() == [1], timeout=20000)
    generator = worker._generator

    def traced(stop):
        return has_trace(generator, latents_for(generator, state), state.truncation, stop)

    qtbot.waitUntil(lambda: traced(None) and traced(16), timeout=20000)  # built after the frame
    assert not traced(64)
    moved = state.move_center(0, 0, (0.3, 0.6))
    worker.request(moved, 2, 7)
    qtbot.waitUntil(lambda: got.ids() == [1, 2], timeout=20000)
    assert np.array_equal(got.frames[-1][1].image, default_render(g, moved).image)  # the eager pixels
    stop_worker(worker, thread)
