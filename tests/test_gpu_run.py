"""The GPU run's command, exercised on the CPU: its --smoke mode runs the same path (worker
processes, warm start, deadlines, packing, size limits) with tiny models. Two smoke runs
with the way back between them check that the second continues the first. Nothing here
touches the real checkpoints/, assets/ or README: the way back goes into a temporary copy.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models.io.checkpoint import load_checkpoint
from models.training import gpu_bench
from models.training.configs import GPU_CONFIGS, SMOKE_CONFIGS
from models.training.gpu_return import LOG_END, LOG_START, ReturnError, bring_back, log_row, read_bundle
from models.training.gpu_run import check_out_limits, kernel_phase, next_plan
from models.training.state import TrainStateError, load_warm_state, save_warm_state

ROOT = Path(__file__).resolve().parent.parent


# Seconds per smoke run: enough on a free 2-core machine (CI). A machine shared with other
# jobs starts the worker Pythons slowly: raise it there (the runs then train longer).
SMOKE_BUDGET = int(os.environ.get("STEERGAN_SMOKE_BUDGET", "40"))


def smoke(out: Path, warm: Path, work: Path, budget: int = SMOKE_BUDGET,
          models: tuple[str, ...] = ("rooms", "clips")) -> tuple[int, dict, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "models.training.gpu_run", "--smoke", "--budget", str(budget),
                        "--models", *models, "--out", str(out), "--warm", str(warm), "--work", str(work)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget + 60)
    summary = json.loads((out / "summary.json").read_text())
    return r.returncode, summary, r.stdout + r.stderr


def test_smoke_run_twice_continues_through_the_way_back(tmp_path):
    repo = tmp_path / "repo"  # the bits of a repository the way back writes to
    repo.mkdir()
    (repo / "README.md").write_text((ROOT / "README.md").read_text())
    warm = repo / "checkpoints" / "warm"

    rc, first, text = smoke(tmp_path / "out1", warm, tmp_path / "work1")
    assert rc in (0, 1), text[-3000:]  # 1: a model's eval was cut at its deadline on a slow CPU
    out1 = tmp_path / "out1"
    assert sorted(p.name for p in out1.iterdir()) == ["bundle.tar.gz", "clips.safetensors", "rooms.safetensors",
                                                      "summary.json"], text[-3000:]
    assert check_out_limits(out1) == [] and first["limit_problems"] == []
    assert first["kernels"]["backend"] == "reference"
    for name in ("rooms", "clips"):
        m = first["models"][name]
        assert m["warm_from"] is None and m["images_before"] == 0 and m["images_after"] > 0, m
        assert m["kernel_backend"] == "reference"
    assert set(first["phases"]) >= {"kernels_done", "train_eval_done", "bench_done", "packed", "end"}

    with pytest.raises(ReturnError, match="smoke run"):
        bring_back(out1, repo)
    bare = tmp_path / "bare"  # --no-warm: the shipped checkpoints, no warm states
    shutil.copytree(repo, bare)
    done = bring_back(out1, bare, allow_smoke=True, say=lambda m: None, keep_warm=False)
    assert done["rooms"]["warm"] == "not kept (--no-warm)" and (bare / "checkpoints" / "rooms.safetensors").exists()
    assert not (bare / "checkpoints" / "warm" / "rooms.safetensors").exists()
    done = bring_back(out1, repo, allow_smoke=True, say=lambda m: None)
    assert set(done) == {"rooms", "clips"}
    G, info = load_checkpoint(repo / "checkpoints" / "rooms.safetensors")
    trained = info.meta["trained_on"]
    assert trained["images"] == first["models"]["rooms"]["images_after"] and trained["device"] == "cpu"
    assert len(trained["runs"]) == 1 and trained["minutes"] > 0
    assert (repo / "checkpoints" / "warm" / "clips.safetensors").exists()
    assert (repo / "checkpoints" / "warm" / "plan.json").exists()
    bundle = read_bundle(out1 / "bundle.tar.gz")
    assert "rooms/log.csv" in bundle and "rooms/status.json" in bundle and "summary.json" in bundle
    for name in ("rooms", "clips"):  # the sheets a worker drew before its deadline are shipped
        sheets = sorted(Path(k).name for k in bundle if k.startswith(f"{name}/sheets/"))
        assert sorted(p.name for p in (repo / "assets").glob(f"{name}_*.png")) == sheets
    readme = (repo / "README.md").read_text()
    table = readme.split(LOG_START)[1].split(LOG_END)[0]
    assert "cpu (smoke)" in table and f"rooms {first['models']['rooms']['images_after']:,}" in table

    # The next run follows the plan the way back stored: here, one model after the other.
    # clips has no warm state (as after `gpu_return --no-warm`): it continues the shipped
    # generator with a fresh D.
    (warm / "plan.json").write_text(json.dumps({"mode": "sequential", "channels_last": True}))
    (warm / "clips.safetensors").unlink()
    rc, second, text = smoke(tmp_path / "out2", warm, tmp_path / "work2")
    assert rc in (0, 1), text[-3000:]
    assert second["plan"]["mode"] == "sequential" and check_out_limits(tmp_path / "out2") == []
    for name, source in (("rooms", warm / "rooms.safetensors"), ("clips", repo / "checkpoints" / "clips.safetensors")):
        m = second["models"][name]
        assert m["warm_from"] == str(source), m
        assert m["images_before"] == first["models"][name]["images_after"] < m["images_after"], m
    _, state = load_warm_state(tmp_path / "out2" / "rooms.safetensors")
    assert [r["images_start"] for r in state["history"]["runs"]] == [0, first["models"]["rooms"]["images_after"]]
    assert len(state["history"]["curve"]) > len(load_warm_state(warm / "rooms.safetensors")[1]["history"]["curve"])


def test_the_relay_model_trains_in_the_gpu_run_and_comes_back_as_the_relay_state(tmp_path):
    """rooms-cpu in the GPU run: only its state comes back, as the relay's own (its finish
    measures and ships it); never over an unfinished relay run, never as a shipped checkpoint."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text((ROOT / "README.md").read_text())
    warm = repo / "checkpoints" / "warm"
    rc, first, text = smoke(tmp_path / "out", warm, tmp_path / "work", models=("rooms-cpu",))
    assert rc in (0, 1), text[-3000:]
    m = first["models"]["rooms-cpu"]
    assert m["warm_from"] is None and m["images_after"] > 0 and m["phase"] == "trained", m  # no eval
    relay_state = repo / "checkpoints" / "relay" / "rooms-cpu.safetensors"
    unfinished = repo / "runs" / "relay" / "rooms-cpu" / "state.safetensors"
    unfinished.parent.mkdir(parents=True)
    unfinished.write_bytes(b"an unfinished relay run")
    done = bring_back(tmp_path / "out", repo, allow_smoke=True, say=lambda m: None)
    assert "unfinished relay run" in done["rooms-cpu"]["kept"] and not relay_state.exists()
    unfinished.unlink()
    done = bring_back(tmp_path / "out", repo, allow_smoke=True, say=lambda m: None)
    assert done["rooms-cpu"]["relay_state"] == str(relay_state) and "kept" not in done["rooms-cpu"]
    assert load_warm_state(relay_state)[1]["images_seen"] == m["images_after"]
    assert not (repo / "checkpoints" / "rooms-cpu.safetensors").exists()  # the relay's gate ships it
    assert not (warm / "rooms-cpu.safetensors").exists()
    done = bring_back(tmp_path / "out", repo, allow_smoke=True, say=lambda m: None)  # no more images: kept
    assert "not replaced" in done["rooms-cpu"]["kept"]


def test_warm_state_is_small_exact_enough_and_checked(tmp_path):
    from models.config import architecture
    from models.nets.discriminator import Discriminator
    from models.nets.generator import Generator

    cfg = architecture("rooms")  # the largest of the GPU run: must stay far below 16 MiB
    torch.manual_seed(0)
    mods = {"G": Generator(cfg), "G_ema": Generator(cfg), "D": Discriminator(cfg.resolution, cfg.channels)}
    data = save_warm_state(tmp_path / "w.safetensors", mods, {"config": GPU_CONFIGS["rooms"].to_dict(), "step": 7})
    assert len(data) <= 12 * 2**20
    loaded, info = load_warm_state(tmp_path / "w.safetensors")
    assert info["step"] == 7
    w = mods["G"].state_dict()
    for k, v in loaded["G"].items():
        assert torch.allclose(v, w[k].float(), rtol=1e-3, atol=1e-4), k
    with torch.no_grad():
        next(mods["D"].parameters()).view(-1)[0] = float("inf")
    save_warm_state(tmp_path / "bad.safetensors", mods, {})
    with pytest.raises(TrainStateError, match="bad.safetensors.*non-finite"):
        load_warm_state(tmp_path / "bad.safetensors")
    with pytest.raises(TrainStateError, match="not a SteerGAN warm-start state"):
        load_warm_state(ROOT / "checkpoints" / "rooms-cpu.safetensors")
    os.mkfifo(tmp_path / "fifo.safetensors")  # refused before opening: no hang
    with pytest.raises(TrainStateError, match="fifo.safetensors: is a FIFO"):
        load_warm_state(tmp_path / "fifo.safetensors")


def test_bench_measures_alone_rate_and_render_latency(tmp_path):
    models = [{"name": n, "config": SMOKE_CONFIGS[n].to_dict(), "state": str(tmp_path / "none.safetensors")}
              for n in ("rooms", "clips")]
    spec = {"device": "cpu", "models": models, "work": str(tmp_path / "w"), "threads": 1, "seconds_each": 0.05,
            "renders": 4, "throughput": True, "out": str(tmp_path / "bench.json"), "channels_last": True}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert gpu_bench.main([str(tmp_path / "spec.json")]) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    assert result["errors"] == {} and result["kernel_backend"] == "reference"
    for n in ("rooms", "clips"):
        assert result["alone"][n]["images_per_s"] > 0 and result["alone"][n]["steps"] >= 2
        assert 0 < result["render"][n]["p50_ms"] <= result["render"][n]["p95_ms"]
    assert result["alone_other_format"]["channels_last"] is False and result["alone_other_format"]["name"] == "rooms"


def _fake_kernel_repo(root: Path, test_body: str, ref_over_ours: float = 3.0) -> None:
    (root / "tests").mkdir(parents=True)
    (root / "kernels").mkdir()
    # named like the GPU tests, which the run selects with -k; a test it must not run fails
    (root / "tests" / "test_kernels_triton.py").write_text(
        f"def test_gpu_kernel():\n    {test_body}\n\ndef test_interpreter_only():\n    assert False\n")
    (root / "kernels" / "__init__.py").write_text("")
    rows = [{"B": 32, "passes": "fwd+bwd", "dtype": "bfloat16", "ratios": {"reference/ours": ref_over_ours}},
            {"B": 1, "passes": "fwd+bwd", "dtype": "bfloat16", "ratios": {"reference/ours": 0.5}}]
    (root / "kernels" / "bench.py").write_text(
        f"import json, sys\njson.dump({{'rows': {rows!r}}}, open(sys.argv[sys.argv.index('--json') + 1], 'w'))\n")


def test_kernel_phase_uses_the_kernel_only_where_its_tests_passed(tmp_path):
    import time

    absent = kernel_phase(tmp_path, tmp_path / "w0", time.time() + 60, "cuda")
    assert absent["backend"] == "reference" and not absent["present"]
    good = tmp_path / "good"
    _fake_kernel_repo(good, "assert True")
    r = kernel_phase(good, tmp_path / "w1", time.time() + 60, "cuda")
    assert r["backend"] == "triton" and r["tests"]["rc"] == 0 and r["faster_than_reference"] is True
    assert (tmp_path / "w1" / "kernels" / "tests.txt").exists()
    bad = tmp_path / "bad"
    _fake_kernel_repo(bad, "assert False")
    r = kernel_phase(bad, tmp_path / "w2", time.time() + 60, "cuda")
    assert r["backend"] == "reference" and r["tests"]["rc"] == 1 and "failed" in r["reason"]
    slow = tmp_path / "slow"  # passes its tests but is slower than the reference: not used
    _fake_kernel_repo(slow, "assert True", ref_over_ours=0.8)
    r = kernel_phase(slow, tmp_path / "w3", time.time() + 60, "cuda")
    assert r["backend"] == "reference" and r["faster_than_reference"] is False and "slower" in r["reason"]


def test_out_limits_are_checked(tmp_path):
    for i in range(9):
        (tmp_path / f"f{i}").write_bytes(b"x")
    problems = check_out_limits(tmp_path)
    assert problems == ["9 files, over 8: " + str([f"f{i}" for i in range(9)])]
    (tmp_path / "f8").unlink()
    (tmp_path / "f6").unlink()
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "ok").write_bytes(b"x")  # two folders down: still comes back
    assert check_out_limits(tmp_path) == []
    (tmp_path / "f7").write_bytes(b"x" * (16 * 2**20 + 1))
    (tmp_path / "a" / "b" / "c").mkdir()
    (tmp_path / "a" / "b" / "c" / "deep").write_bytes(b"x")
    problems = check_out_limits(tmp_path)
    assert any("f7: 16.0 MiB, over 16 MiB" in p for p in problems) and any("3 folders deep" in p for p in problems)


def test_next_plan_prefers_what_gave_more_images():
    bench = {"reference": {"alone": {"a": {"images_per_s": 100.0}, "b": {"images_per_s": 100.0}}}}
    together = {"a": {"images_per_s_together": 80.0}, "b": {"images_per_s_together": 70.0}}
    assert next_plan(together, bench, {"mode": "concurrent"})["mode"] == "concurrent"  # 75 > 100 / 2
    slow = {"a": {"images_per_s_together": 30.0}, "b": {"images_per_s_together": 20.0}}
    plan = next_plan(slow, bench, {"mode": "concurrent"})
    assert plan["mode"] == "sequential" and plan["concurrency_gain"] == 0.5
    bench["reference"]["alone_other_format"] = {"name": "a", "channels_last": False, "images_per_s": 130.0}
    plan = next_plan(together, bench, {"mode": "concurrent", "channels_last": True})
    assert plan["channels_last"] is False and plan["other_format_speed"] == 1.3


def test_log_row_names_gpu_minutes_images_and_metrics():
    summary = {"started": "20261126T050000Z", "machine": {"gpu": "NVIDIA H100 80GB HBM3"},
               "models": {"rooms": {"images_after": 123456, "train_seconds": 300,
                                    "metrics": {"domain_fd": 12.345, "co_move_ratio": 0.7,
                                                "realism_accuracy": 0.912, "co_move_tracked": None}},
                          "clips": {"images_after": 999, "train_seconds": 290, "metrics": None}}}
    row = log_row(summary, ["rooms"])
    assert row == ("| 2026-11-26 05:00 | NVIDIA H100 80GB HBM3 | 5.0 | rooms 123,456, clips 999 |"
                   " rooms: real/fake acc. 0.912, FD 12.3, co-move 0.7 | rooms |")


def test_gpu_machine_modules_import_without_qt():
    """The GPU machine has no PySide6/pyqtgraph: everything the run imports must do without."""
    code = ("import sys\n"
            "class NoQt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('PySide6', 'pyqtgraph', 'app'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, NoQt())\n"
            "import models, models.training.gpu_run, models.training.gpu_worker, models.training.gpu_bench\n"
            "import models.training.gpu_return, models.metrics.evaluate, models.tools.showcase, models.metrics.probe\n"
            "import models.training.gpu_relay, models.training.relay\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_the_default_checkpoint_is_rooms_once_it_measures_no_worse(tmp_path, monkeypatch):
    from models.io import bundled, library
    from models.io.checkpoint import save_checkpoint

    # The real search order: the GPU-trained rooms first, then the CPU-trained one.
    assert [p.name for p in bundled.DEFAULT_CHECKPOINTS] == ["rooms.safetensors", "rooms-cpu.safetensors"]
    gpu, cpu = tmp_path / "rooms.safetensors", tmp_path / "rooms-cpu.safetensors"
    monkeypatch.setattr(bundled, "DEFAULT_CHECKPOINTS", (gpu, cpu))
    G = library.untrained_generator("tiny-rooms")

    def ship(path, **metrics):
        save_checkpoint(path, G, {"name": path.stem, "trained_on": {"images": 1}, "metrics": metrics})

    assert library.default_checkpoint() is None
    ship(cpu, realism_accuracy=0.96, domain_fd=0.036)
    assert library.default_checkpoint() == cpu
    ship(gpu, realism_accuracy=0.96, domain_fd=1.39)  # what the first 5-minute GPU run shipped
    assert library.default_checkpoint() == cpu
    ship(gpu, realism_accuracy=0.97, domain_fd=0.02)  # better FD, worse classifier: still not
    assert library.default_checkpoint() == cpu
    ship(gpu)  # never evaluated: nothing says it is better
    assert library.default_checkpoint() == cpu
    ship(gpu, realism_accuracy=0.80, domain_fd=0.036)
    assert library.default_checkpoint() == gpu
    gpu.write_bytes(b"not a checkpoint")  # a damaged GPU file must not cost the user the default
    assert library.default_checkpoint() == cpu
    cpu.unlink()
    assert library.default_checkpoint() == gpu  # alone, it is the default whatever it measures


def test_gpu_budget_leaves_time_for_every_phase(tmp_path):
    """The deadlines of `--budget 540` on the GPU (run under a 570 s limit)."""
    import argparse

    from models.training.gpu_run import RESERVES, Clock, worker_specs

    clock = Clock(540, "gpu", kernels_present=True, start=1000.0)
    assert clock.kernels == 1090 and clock.eval == 1370 and clock.bench == 1440 and clock.pack == 1525
    assert clock.end == 1540 and clock.save_grace == 0 and RESERVES["gpu"]["kernels"] <= 90
    with pytest.raises(SystemExit, match="too short"):
        Clock(120, "gpu", kernels_present=True, start=0.0)
    args = argparse.Namespace(smoke=False, warm=tmp_path / "warm")
    clock = Clock(540, "gpu", kernels_present=False, start=__import__("time").time())
    (tmp_path / "relay").mkdir()
    (tmp_path / "relay" / "rooms-cpu.safetensors").write_bytes(b"the relay's state")
    specs = worker_specs(list(GPU_CONFIGS), GPU_CONFIGS, clock, args, tmp_path / "out", tmp_path / "w",
                         {"mode": "concurrent", "channels_last": True}, "cuda", {})
    assert [s["name"] for _, s, _ in specs] == ["rooms", "rooms-no-move", "figures", "figures-no-mtm", "clips",
                                                "rooms-cpu", "figures-cpu"]
    for _, spec, _ in specs:
        assert spec["train_until"] == clock.eval and spec["device"] == "cuda" and spec["channels_last"]
        assert (spec["eval_samples"], spec["fd_samples"], spec["sheet_cell"]) == (128, 512, 128)
        # the relay's model continues the relay's state and only trains (its finish measures it)
        # (or, with no relay state yet, its shipped checkpoint, as figures-cpu here)
        relay_model = spec["name"] in ("rooms-cpu", "figures-cpu")
        assert spec["train_only"] == relay_model
        in_relay = spec["name"] == "rooms-cpu"
        assert spec["warm_in"] == str(tmp_path / ("relay" if in_relay else "") / f"{spec['name']}.safetensors")
    configs = {spec["name"]: spec["config"] for _, spec, _ in specs}

    def differences(a: str, b: str) -> set[str]:
        return {k for k in configs[a] if configs[a][k] != configs[b][k]}

    # Fair experiments: each pair differs in its name and in the one thing it compares.
    assert differences("figures", "figures-no-mtm") == {"name", "architecture"}
    assert differences("rooms", "rooms-no-move") == {"name", "move_weight"}
    assert configs["rooms"]["move_weight"] > 0 and configs["rooms-no-move"]["move_weight"] == 0
    assert configs["figures"]["move_weight"] > 0  # the term that won the CPU comparison (issue 14)
    for name, cfg in GPU_CONFIGS.items():  # the smoke run takes the chunked path wherever the GPU does
        assert (cfg.real_chunk > 1) == (SMOKE_CONFIGS[name].real_chunk > 1), name
    seq = worker_specs(["rooms", "clips"], GPU_CONFIGS, clock, args, tmp_path / "out", tmp_path / "w",
                       {"mode": "sequential"}, "cuda", {})
    (_, a, _), (_, b, _) = seq
    assert a["train_until"] == pytest.approx(b["train_from"]) and b["train_until"] == pytest.approx(clock.eval)


def test_a_warm_state_of_another_architecture_is_refused_by_name(tmp_path):
    from models.training.gpu_worker import WarmTrainer

    rooms, clips = SMOKE_CONFIGS["rooms"], SMOKE_CONFIGS["clips"]
    trainer = WarmTrainer(rooms, tmp_path / "work", "cpu")
    other = WarmTrainer(clips, tmp_path / "work2", "cpu")
    mods = {"G": other.G, "G_ema": other.G_ema, "D": other.D}
    save_warm_state(tmp_path / "clips.safetensors", mods, {"config": clips.to_dict()})
    with pytest.raises(TrainStateError, match=r"clips.safetensors: trained with architecture="):
        trainer.warm_start(tmp_path / "clips.safetensors")
    # The right config in its header, but weights of other networks: the weights are named.
    save_warm_state(tmp_path / "mixed.safetensors", mods, {"config": rooms.to_dict()})
    with pytest.raises(TrainStateError, match=r"mixed.safetensors: weights do not fit the"):
        trainer.warm_start(tmp_path / "mixed.safetensors")


def test_profile_step_smoke_writes_the_phases_of_a_step(tmp_path):
    """The profiler the GPU session runs (models/training/profile_step.py), on the CPU with a
    tiny config: every phase of the step is timed and the files the machine returns exist."""
    from models.training import profile_step

    rc = profile_step.main(["rooms", "--smoke", "--device", "cpu", "--warmup", "1", "--steps", "1",
                            "--profiled", "1", "--out", str(tmp_path)])
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    rooms = summary["configs"]["rooms"]
    assert rooms["step_ms"] > 0 and rooms["batch"] == SMOKE_CONFIGS["rooms"].batch
    assert {f"phase:{p}" for p in profile_step.PHASES} <= set(rooms["phases"])
    assert all(v["cpu_ms"] > 0 for v in rooms["phases"].values())
    assert "phase:update_g" in (tmp_path / "rooms_phases.txt").read_text()
    assert "aten::" in (tmp_path / "rooms_ops.txt").read_text()
    with pytest.raises(SystemExit):
        profile_step.main(["no-such-config", "--out", str(tmp_path)])


def test_the_gpu_runs_tile_sweep_keeps_other_gpus_and_sets_the_file_for_later_children(tmp_path, monkeypatch):
    """gpu_run.tune_tiles on the CPU (the interpreter, a tiny shape): it starts from the
    repository's file, so GPU models tuned before stay, and every later child reads it."""
    from kernels.triton_mtm import CANDIDATES
    from models.training import gpu_run

    monkeypatch.setenv(gpu_run.TILES_ENV, "unset")  # restored after the test: tune_tiles sets it
    repo, out = tmp_path / "repo", tmp_path / "out"
    (repo / "kernels").mkdir(parents=True)
    out.mkdir()
    other = {"fwd": {k: v for k, v in vars(CANDIDATES["fwd"][1]).items() if k != "kernel"}}
    (repo / gpu_run.TUNED_TILES).write_text(json.dumps({"Another GPU": other}))
    (repo / gpu_run.KERNEL_TUNE).write_text("")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRITON_INTERPRET": "1"}
    result = gpu_run.tune_tiles(repo, out, time.time() + 300, env, ("--shape", "1", "8", "3", "--kernel", "fwd"))
    assert result["rc"] == 0, result["tail"]
    tiles = json.loads((out / "tuned_tiles.json").read_text())
    assert tiles["Another GPU"] == other
    assert [k["kernel"] for k in result["report"]["kernels"]] == ["fwd"]
    assert os.environ[gpu_run.TILES_ENV] == env[gpu_run.TILES_ENV] == str(out / "tuned_tiles.json")
    assert "no time" in gpu_run.tune_tiles(repo, out, time.time() + 5, env)["skipped"]
    # A GPU model the repository's file has every kernel of: no process is started at all.
    every = {k: {f: v for f, v in vars(c[0]).items() if f != "kernel"} for k, c in CANDIDATES.items()}
    (repo / gpu_run.TUNED_TILES).write_text(json.dumps({"Another GPU": other, "GPU X": every}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "GPU X")
    monkeypatch.setattr(gpu_run, "_run_logged", lambda *a, **k: pytest.fail("started kernels.tune"))
    assert gpu_run.tune_tiles(repo, out, time.time() + 300, env) == {"skipped": "this GPU model is tuned already"}


def test_the_way_back_merges_the_runs_tuned_tiles_and_refuses_a_malformed_file_before_writing(tmp_path):
    import io
    import tarfile

    from models.training.gpu_return import bring_back

    def returned(tiles: bytes) -> Path:
        src = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        src.mkdir()
        (src / "summary.json").write_text(json.dumps({"format": "steergan-gpu-run", "smoke": False,
                                                      "machine": {"gpu": "GPU A"}, "models": {}}))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("kernels/tuned_tiles.json")
            info.size = len(tiles)
            tar.addfile(info, io.BytesIO(tiles))
        (src / "bundle.tar.gz").write_bytes(buf.getvalue())
        return src

    repo = tmp_path / "repo"
    (repo / "kernels").mkdir(parents=True)
    target = repo / "kernels" / "tuned_tiles.json"
    fwd = {"block_m": 64, "block_n": 128, "block_k": 16, "num_warps": 8, "num_stages": 2}
    # At home meanwhile: another GPU model's entry, which the run's copy does not have.
    target.write_text(json.dumps({"GPU B": {"fwd": fwd}}))
    run_file = {"GPU A": {"fwd": fwd}, "GPU C": {"fwd": fwd}}  # C: stale, not this run's
    done = bring_back(returned(json.dumps(run_file).encode()), repo, readme=False, say=lambda m: None)
    assert done["tuned_tiles"]["gpu"] == "GPU A"
    assert json.loads(target.read_text()) == {"GPU A": {"fwd": fwd}, "GPU B": {"fwd": fwd}}
    before = target.read_text()
    for bad in (b"{nope", b"[1, 2]", json.dumps({"GPU A": {"fwd": {"block_m": "64"}}}).encode()):
        (repo / "assets" / "gpu_run_summary.json").unlink()
        with pytest.raises(ReturnError, match="tuned_tiles.json"):
            bring_back(returned(bad), repo, readme=False, say=lambda m: None)
        assert not (repo / "assets" / "gpu_run_summary.json").exists()  # refused before writing anything
        (repo / "assets" / "gpu_run_summary.json").write_text("{}")
    assert target.read_text() == before
