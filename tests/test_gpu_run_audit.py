"""Audit of the GPU run's one call (models/training/gpu_run.py) and its way back: what a run
killed before its end (SIGKILL at the device's limit, a limit cut short by a slow start)
leaves in --out must still come back through gpu_return. CPU only, tiny models."""
import json
from pathlib import Path

import pytest

from models.training import gpu_run
from models.training.configs import SMOKE_CONFIGS
from models.training.gpu_return import LOG_END, LOG_START, ReturnError, bring_back
from models.training.gpu_worker import WarmTrainer

ROOT = Path(__file__).resolve().parent.parent


class Killed(BaseException):
    """Stands for SIGKILL: nothing of gpu_run runs after it but its `finally` (which writes
    nothing into --out)."""


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text((ROOT / "README.md").read_text())
    return repo


def _state(name: str, work: Path, state_out: Path, images: int) -> None:
    """What a worker's periodic save leaves in --out: its warm state."""
    trainer = WarmTrainer(SMOKE_CONFIGS[name], work, "cpu", state_out=state_out)
    trainer.images_seen = images
    trainer.save()


def test_a_run_killed_while_training_returns_states_that_the_way_back_takes(tmp_path, monkeypatch):
    out, work, repo = tmp_path / "out", tmp_path / "work", _repo(tmp_path)
    monkeypatch.setattr(gpu_run.signal, "signal", lambda *a: None)  # pytest keeps its own handlers
    monkeypatch.setattr(gpu_run, "KERNEL_TESTS", "tests/no_kernel_tests_here.py")  # no kernel phase

    def killed_while_training(specs, *args, **kwargs):
        for name, spec, _ in specs:  # each worker saved its state (every 2 minutes), then the kill
            _state(name, Path(spec["work"]), Path(spec["state_out"]), images=6)
        raise Killed

    monkeypatch.setattr(gpu_run, "train_phase", killed_while_training)
    with pytest.raises(Killed):
        gpu_run.main(["--smoke", "--budget", "60", "--models", "rooms", "--out", str(out),
                      "--warm", str(tmp_path / "warm"), "--work", str(work)])
    assert sorted(p.name for p in out.iterdir()) == ["rooms.safetensors", "summary.json"]
    assert gpu_run.check_out_limits(out) == []
    done = bring_back(out, repo, allow_smoke=True, say=lambda m: None)
    assert done["rooms"]["images"] == 6 and (repo / "checkpoints" / "rooms.safetensors").exists()
    assert (repo / "checkpoints" / "warm" / "rooms.safetensors").exists()
    table = (repo / "README.md").read_text().split(LOG_START)[1].split(LOG_END)[0]
    assert "| rooms 6 |" in table  # the images its state has seen, not 0


def _returned(tmp_path: Path) -> Path:
    """An --out folder as a finished smoke run of rooms leaves it (summary and state)."""
    out = tmp_path / "out"
    out.mkdir()
    _state("rooms", tmp_path / "work", out / "rooms.safetensors", images=4)
    summary = {"format": "steergan-gpu-run", "version": 1, "started": "20261206T050000Z", "smoke": True,
               "machine": {"gpu": None, "device": "cpu"}, "models": {"rooms": {"phase": "training"}}}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def test_the_way_back_passes_over_a_write_that_the_kill_cut_short(tmp_path):
    """A kill while a worker (or gpu_run) wrote into --out leaves the atomic writer's temporary
    beside the finished files: they are good, the temporary is never a result."""
    out, repo = _returned(tmp_path), _repo(tmp_path)
    cut = out / ".rooms.safetensors.sgd16a-4242.0123abcd.part"
    cut.write_bytes(b"half a state")
    (out / ".summary.json.sgd16a-4243.89abcdef.part").write_bytes(b"{")
    said: list[str] = []
    done = bring_back(out, repo, allow_smoke=True, say=said.append)
    assert done["rooms"]["images"] == 4 and (repo / "checkpoints" / "rooms.safetensors").exists()
    assert any(str(cut) in line and "passed over" in line for line in said)
    # Only a temporary of a file the run returns: anything else is refused as before.
    cut.unlink()
    (out / ".notes.txt.sgd16a-4244.01234567.part").write_bytes(b"x")
    with pytest.raises(ReturnError, match="not a file a GPU run returns"):
        bring_back(out, repo, allow_smoke=True, say=lambda m: None)
