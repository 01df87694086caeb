"""What the session-28 audit of training found: a stop signal mid-step saved half a step, a
resume took the saved run's optimiser settings, `train` into a used folder overwrote that run,
and `relay finish` could keep another state than it measured, lose a plan edit made while it
measured, and let a relay start meanwhile."""
import json
import os
import signal
import time

import pytest
from test_relay import relay_env  # noqa: F401 (a fixture)
from test_training import assert_same_weights, stepped

from app.cli import main
from models.training import relay
from models.training.configs import TRAINING_CONFIGS
from models.training.gpu_worker import WarmTrainer
from models.training.trainer import Trainer


def test_a_stop_signal_mid_step_ends_the_step_then_saves_and_resumes_bit_exact(tmp_path):
    cfg = TRAINING_CONFIGS["tiny-rooms"]
    straight = stepped(cfg, tmp_path / "a", 5)
    stopped = Trainer(cfg, tmp_path / "b")
    step_g = stopped.opt_G.step

    def step_then_signal(*args, **kwargs):  # the signal lands inside the step, after G's update
        out = step_g(*args, **kwargs)
        if stopped.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    stopped.opt_G.step = step_then_signal
    previous = signal.signal(signal.SIGTERM, stopped.on_stop_signal)
    try:
        stopped.run(max_steps=100)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.step == 3 and stopped.stop_requested  # the step in progress was completed
    resumed = Trainer(cfg, tmp_path / "c", resume=tmp_path / "b")
    assert resumed.step == 3
    resumed.run(max_steps=5)
    assert_same_weights(straight, resumed)


def test_a_resume_trains_with_this_configs_optimiser_settings_and_says_what_changed(tmp_path):
    import dataclasses

    cfg = TRAINING_CONFIGS["tiny-rooms"]
    Trainer(cfg, tmp_path / "run").run(max_steps=1)
    said: list[str] = []
    halved = dataclasses.replace(cfg, lr=cfg.lr / 2, betas=(0.5, 0.9))
    resumed = Trainer(halved, tmp_path / "run2", resume=tmp_path / "run", log=said.append)
    assert [g["lr"] for g in resumed.opt_G.param_groups] == [cfg.lr / 2] * len(resumed.opt_G.param_groups)
    assert resumed.opt_G.param_groups[0]["betas"] == (0.5, 0.9)
    assert resumed.opt_G.state  # Adam's moments came from the state
    assert any("lr 0.002 -> 0.001" in line for line in said)


def test_train_from_scratch_into_a_used_run_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "tiny-rooms", "--steps", "1", "--out", str(run), "--device", "cpu"]) == 0
    log = (run / "log.csv").read_bytes()
    capsys.readouterr()
    assert main(["train", "tiny-rooms", "--steps", "1", "--out", str(run), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "holds a run already" in err and "--resume" in err
    assert (run / "log.csv").read_bytes() == log


def test_finish_keeps_the_state_it_measured_the_plan_edits_made_meanwhile_and_refuses_a_start(
        relay_env, monkeypatch):  # noqa: F811
    folders, readme = relay_env
    work = folders["STEERGAN_RELAY_RUNS"] / "tiny"
    work.mkdir()
    trainer = WarmTrainer(TRAINING_CONFIGS["tiny-rooms-layout"], work, "cpu", state_out=work / "state.safetensors")
    trainer.train_step()
    trainer.save()
    measured_bytes = (work / "state.safetensors").read_bytes()
    plan_path = folders["STEERGAN_RELAY_DIR"] / "plan.json"
    seen = {}

    def measure(path, log, samples=None):
        if "refused" not in seen:
            with pytest.raises(relay.RelayError, match="is measuring the last run"):
                relay.start(time.time() + 120, threads=1)
            seen["refused"] = True
            plan = json.loads(plan_path.read_text())
            plan["models"][0]["targets"]["realism_accuracy_max"] = 0.5  # an edit while it measures
            plan_path.write_text(json.dumps(plan))
            (work / "state.safetensors").write_bytes(b"a newer save")  # the file changes meanwhile
        return {"realism_accuracy": 0.7, "domain_fd": 0.02}

    monkeypatch.setattr(relay, "measure", measure)
    results = relay.finish(readme=readme, sheets=False, log=lambda m: None)
    assert seen["refused"] and results["tiny"]["shipped"]
    assert (folders["STEERGAN_RELAY_DIR"] / "tiny.safetensors").read_bytes() == measured_bytes
    plan = json.loads(plan_path.read_text())
    assert plan["models"][0]["targets"]["realism_accuracy_max"] == 0.5
    assert plan["measured"]["tiny"]["realism_accuracy"] == 0.7
    assert not (folders["STEERGAN_RELAY_RUNS"] / relay.FINISHING_NAME).exists()
    assert not list(work.glob("*state.safetensors"))


def test_finish_checks_the_readme_before_measuring(relay_env, monkeypatch, tmp_path):  # noqa: F811
    folders, _ = relay_env
    work = folders["STEERGAN_RELAY_RUNS"] / "tiny"
    work.mkdir()
    WarmTrainer(TRAINING_CONFIGS["tiny-rooms-layout"], work, "cpu", state_out=work / "state.safetensors").save()
    monkeypatch.setattr(relay, "measure", lambda *a, **k: pytest.fail("measured before the README was checked"))
    bare = tmp_path / "README.md"
    bare.write_text("# no relay log here\n")
    with pytest.raises(relay.RelayError, match="no training log table"):
        relay.finish(readme=bare, sheets=False, log=lambda m: None)
    assert (work / "state.safetensors").exists()
