"""The relay's model on a lent GPU (models/training/gpu_relay.py): the spec it hands the GPU
worker, and the worker's train-only path that returns nothing but the state."""
from __future__ import annotations

import json
import time

import pytest

from models.training import gpu_relay
from models.training.configs import training_config
from models.training.gpu_worker import main as worker
from models.training.state import load_warm_state


def test_the_spec_continues_the_relay_state_at_a_gpu_batch(tmp_path):
    spec = gpu_relay.spec_for("rooms-cpu", "rooms-cpu", 2.0, tmp_path / "out", tmp_path / "work", "cpu", 32)
    relay_cfg = training_config("rooms-cpu").to_dict()
    cfg = spec["config"]
    assert spec["warm_in"] == str(gpu_relay.RELAY_STATES / "rooms-cpu.safetensors") and spec["train_only"]
    assert spec["state_out"] == str(tmp_path / "out" / "rooms-cpu.safetensors")
    assert cfg["batch"] == 32 and cfg["ema_kimg"] >= 2.5
    # the recipe and the networks are the relay's: the state continues as the relay's own
    same = ("architecture", "dataset", "recipe", "move_weight", "colour_match", "d_segment")
    assert {k: cfg[k] for k in same} == {k: relay_cfg[k] for k in same}
    assert time.time() + 100 < spec["train_until"] <= time.time() + 120


def test_no_relay_state_is_one_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_relay, "RELAY_STATES", tmp_path)
    with pytest.raises(SystemExit, match="rooms-cpu.safetensors: no relay state"):
        gpu_relay.spec_for("rooms-cpu", "rooms-cpu", 1.0, tmp_path, tmp_path, "cpu", 8)


def test_a_train_only_worker_saves_the_state_and_nothing_else(tmp_path):
    cfg = training_config("tiny-rooms")
    spec = {"name": "tiny", "config": cfg.to_dict(), "device": "cpu", "state_out": str(tmp_path / "out.safetensors"),
            "work": str(tmp_path / "work"), "train_from": 0, "train_until": 0, "min_steps": 2, "threads": 1,
            "train_only": True, "run_entry": {"via": "gpu_relay"}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert worker([str(tmp_path / "spec.json")]) == 0
    _, info = load_warm_state(tmp_path / "out.safetensors")
    assert info["step"] == 2 and info["history"]["runs"][-1]["via"] == "gpu_relay"
    status = json.loads((tmp_path / "work" / "status.json").read_text())
    assert status["phase"] == "trained"  # no checkpoint, sheets or eval after it
    assert not (tmp_path / "work" / "tiny.safetensors").exists()
