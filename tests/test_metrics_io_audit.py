"""Audit of the evaluation (models/metrics/), the checkpoint files (models/io/) and the way
back from a GPU run (models/training/gpu_return.py, compare_states.py): each test here failed
before the fix it names."""
from __future__ import annotations

import pytest
from test_gpu_return_hostile import assert_refused, good_return, repo, run, src, write_state  # noqa: F401

from models.training.state import load_warm_state


def test_a_warm_state_whose_train_seconds_is_null_is_one_line(src, repo, good_return, capsys):  # noqa: F811
    """The next run reads float(info.get("train_seconds", 0.0)): null crashed the check (and
    the shipped header's minutes) with a TypeError traceback instead of one refusing line."""
    modules, info = good_return[2]["rooms"]
    write_state(src / "rooms.safetensors", modules, {**info, "train_seconds": None})
    assert_refused(src, repo, capsys, "train_seconds")


def test_a_warm_state_that_has_seen_more_is_not_replaced(src, repo, good_return, capsys):  # noqa: F811
    """A GPU run whose warm start was refused there trains from scratch (gpu_worker.build) and
    returns a state that has seen fewer images: it replaced the warm state here, which had
    seen more, as the shipped checkpoint and the relay state are never replaced."""
    modules, info = good_return[2]["rooms"]
    warm = repo / "checkpoints" / "warm" / "rooms.safetensors"
    write_state(warm, modules, {**info, "images_seen": 1000})
    before = warm.read_bytes()
    assert run([str(src), "--repo", str(repo), "--allow-smoke"]) == 0, capsys.readouterr()
    assert warm.read_bytes() == before
    assert "rooms: warm " + str(warm) + " has 1000 images seen, this run 8: not replaced" in capsys.readouterr().out
    # the other model's state came home; --ship NAME replaces it whatever it has seen
    assert load_warm_state(repo / "checkpoints" / "warm" / "clips.safetensors")[1]["images_seen"] == 8
    assert run([str(src), "--repo", str(repo), "--allow-smoke", "--ship", "rooms"]) == 0, capsys.readouterr()
    assert load_warm_state(warm)[1]["images_seen"] == 8


def test_compare_states_reports_the_tracked_found_share(tmp_path, monkeypatch):
    """compare_states listed "co_move_found", a key evaluate never writes (it is
    co_move_tracked_found): the share of moves whose object was found at its new place was
    dropped from every comparison's row and metrics.json."""
    import json

    from models.io.checkpoint import save_checkpoint
    from models.io.library import untrained_generator
    from models.metrics.evaluate import KEYS
    from models.training import compare_states, relay

    ckpt = tmp_path / "plain.safetensors"
    save_checkpoint(ckpt, untrained_generator("tiny-plain"), {"name": "plain"})
    measured = {key: 0.25 for key in KEYS} | {"co_move_tracked_ceiling": 0.5}
    monkeypatch.setattr(relay, "measure", lambda path, log=None, samples=None: dict(measured))
    out = tmp_path / "cmp"
    assert compare_states.main([f"a={ckpt}", "--out", str(out)]) == 0
    row = json.loads((out / "metrics.json").read_text())["a"]
    assert row["co_move_tracked_found"] == 0.25 and row["co_move_tracked"] == 0.25
    assert set(compare_states.REPORTED) <= set(KEYS) | {"co_move_tracked_ceiling", "realism_accuracy_each"}


def test_a_truncated_rooms_checkpoint_never_takes_the_default(tmp_path, monkeypatch):
    """The default is chosen from the header alone (bundled.stored_meta): a rooms file whose
    header is whole but whose weights were cut off (an interrupted copy) took the default with
    its stored metrics, and `steergan render` and the studio then failed to open it instead of
    opening rooms-cpu."""
    from models.io import bundled, library
    from models.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    gpu, cpu = tmp_path / "rooms.safetensors", tmp_path / "rooms-cpu.safetensors"
    monkeypatch.setattr(bundled, "DEFAULT_CHECKPOINTS", (gpu, cpu))
    G = library.untrained_generator("tiny-rooms")
    save_checkpoint(cpu, G, {"name": "rooms-cpu", "metrics": {"realism_accuracy": 0.9, "domain_fd": 0.5}})
    save_checkpoint(gpu, G, {"name": "rooms", "metrics": {"realism_accuracy": 0.6, "domain_fd": 0.1}})
    assert library.default_checkpoint() == gpu
    data = gpu.read_bytes()
    gpu.write_bytes(data[:-64])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(gpu)
    assert library.default_checkpoint() == cpu
    assert library.open_generator().info.path == str(cpu)
    gpu.write_bytes(data)
    assert library.default_checkpoint() == gpu


def test_a_probe_with_non_finite_weights_is_refused(tmp_path):
    """`steergan eval --probe FILE` loaded a probe whose weights hold NaN: the domain FD came
    out NaN and every co-move score 0 (nothing "found"), stored with --store as if measured."""
    import torch

    from models.metrics.probe import Probe, load_probe, probe_classes, save_probe

    torch.manual_seed(0)
    probe = Probe(probe_classes())
    path = tmp_path / "probe.safetensors"
    save_probe(path, probe, {"steps": 0})
    load_probe(path)  # a finite one loads
    with torch.no_grad():
        probe.enc2[0].weight[0, 0, 0, 0] = float("nan")
    save_probe(path, probe, {"steps": 0})
    with pytest.raises(ValueError, match=r"probe.safetensors: .*'enc2\.0\.weight'.*non-finite"):
        load_probe(path)


def test_arm_coverage_measures_every_generator_on_the_same_real_figures():
    """arm_coverage drew the real figures and G's latents from one generator: after the first
    batch the real skeletons (and so `arms_real`, the ceiling) depended on how many numbers
    the model's latents take, so two models compared side by side (compare_states) were
    measured on different figures, as kinds and parts take care not to."""
    from dataclasses import replace

    import torch

    from models.config import architecture
    from models.metrics.limbs import arm_coverage
    from models.metrics.probe import Probe, probe_classes
    from models.nets.generator import Generator

    torch.manual_seed(0)
    probe = Probe(probe_classes()).eval()
    cfg = architecture("tiny-figures")
    a = Generator(cfg).eval()
    b = Generator(replace(cfg, z_dim=cfg.z_dim // 2)).eval()
    first, second = arm_coverage(a, probe, samples=8, batch=4), arm_coverage(b, probe, samples=8, batch=4)
    assert first["arms_real"] == second["arms_real"]
    assert arm_coverage(a, probe, samples=8, batch=4) == first  # and the same again
