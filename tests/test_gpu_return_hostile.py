"""The way back from a GPU (models/training/gpu_return.py) takes files from another machine:
each hostile returned folder here must be refused with one line and exit status 2, leaving
the repository's checkpoints/, assets/, kernels/ and README byte-identical (issue 25, items
7-9). Everything runs against a small repository in a temporary folder, never the real one.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import threading
import time
from pathlib import Path

import pytest
import torch

from models.io import bundled
from models.io.checkpoint import read_info, save_checkpoint
from models.training.configs import SMOKE_CONFIGS
from models.training.gpu_return import LOG_END, LOG_START, MAX_UNPACKED_BYTES, ReturnError, main, read_bundle
from models.training.state import load_warm_state, save_warm_state

README = f"""# A repository\n\nTraining log:\n\n{LOG_START}
| date (UTC) | GPU | minutes | images seen so far | key metrics | shipped |
|---|---|---|---|---|---|
{LOG_END}\n\nThe end.\n"""
DEADLINE_S = 180  # generous on two busy cores; a FIFO that blocks would wait forever


def png(color: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (color, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


def write_bundle(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None, level: int = 6) -> None:
    with tarfile.open(path, "w:gz", compresslevel=level) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


class _Weights:
    """Stands in for a module in save_warm_state: a state dict, as loaded."""

    def __init__(self, sd: dict):
        self.sd = sd

    def state_dict(self) -> dict:
        return self.sd


def write_state(path: Path, modules: dict, info: dict, extra_d: dict | None = None) -> None:
    mods = {k: _Weights(dict(v)) for k, v in modules.items()}
    mods["D"].sd.update(extra_d or {})
    save_warm_state(path, mods, info)


@pytest.fixture(scope="module")
def good_return(tmp_path_factory):
    """A returned folder as a smoke run of rooms and clips writes it, built directly (no
    training): the states, summary.json and bundle.tar.gz."""
    from models.training.gpu_worker import WarmTrainer

    src = tmp_path_factory.mktemp("returned")
    states = {}
    for name in ("rooms", "clips"):
        trainer = WarmTrainer(SMOKE_CONFIGS[name], tmp_path_factory.mktemp(f"work-{name}"), "cpu")
        trainer.step, trainer.images_seen, trainer.train_seconds = 4, 8, 3.0
        save_warm_state(src / f"{name}.safetensors", {"G": trainer.G, "G_ema": trainer.G_ema, "D": trainer.D},
                        trainer.warm_info())
        states[name] = load_warm_state(src / f"{name}.safetensors")
    metrics = {"realism_accuracy": 0.5, "domain_fd": 0.001, "co_move_ratio": 0.3, "samples": 4}
    result = {"phase": "done", "images_after": 8, "train_seconds": 3.0, "kernel_backend": "reference",
              "metrics": metrics}
    summary = {"format": "steergan-gpu-run", "version": 1, "started": "20261201T101500Z", "smoke": True,
               "machine": {"gpu": None, "device": "cpu"}, "models": {"rooms": result, "clips": dict(result)},
               "next_plan": {"mode": "concurrent", "channels_last": True, "concurrency_gain": 1.2}}
    (src / "summary.json").write_text(json.dumps(summary))
    write_bundle(src / "bundle.tar.gz", {"summary.json": b"{}", "rooms/log.csv": b"step\n",
                                         "rooms/sheets/rooms_samples.png": png(1),
                                         "clips/sheets/clips_samples.png": png(2)})
    return src, summary, states


@pytest.fixture
def src(good_return, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(good_return[0], out)
    return out


@pytest.fixture
def repo(tmp_path) -> Path:
    """The files a return may touch, with something already in each place."""
    from models.io.library import untrained_generator

    repo = tmp_path / "repo"
    (repo / "checkpoints" / "warm").mkdir(parents=True)
    (repo / "assets").mkdir()
    (repo / "kernels").mkdir()
    (repo / "README.md").write_text(README)
    save_checkpoint(repo / "checkpoints" / "rooms-cpu.safetensors", untrained_generator("tiny-rooms"),
                    {"name": "rooms-cpu", "trained_on": {"images": 1},
                     "metrics": {"realism_accuracy": 0.9, "domain_fd": 0.5}})
    (repo / "checkpoints" / "warm" / "rooms.safetensors").write_bytes(b"the previous warm state")
    (repo / "checkpoints" / "warm" / "plan.json").write_text('{"mode": "concurrent"}\n')
    (repo / "assets" / "screenshot.png").write_bytes(png(9))
    (repo / "assets" / "rooms_samples.png").write_bytes(png(8))
    (repo / "kernels" / "tuned_tiles.json").write_text("{}\n")
    return repo


def snapshot(root: Path) -> dict[str, object]:
    """Every path under `root`: its kind and its bytes (or link target)."""
    tree: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                tree[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                tree[rel] = "dir"
            else:
                tree[rel] = p.read_bytes()
    return tree


def run(args: list[str], deadline: float = DEADLINE_S, unblock: list[Path] = ()) -> int:
    """main(args), failing the test instead of hanging if it does not return in time."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(rc=main(args)), daemon=True)
    thread.start()
    thread.join(deadline)
    if thread.is_alive():
        for fifo in unblock:  # let the blocked open return, so the thread can end
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        pytest.fail(f"gpu_return did not return within {deadline} s (blocked on a FIFO?)")
    return result["rc"]


def assert_refused(src: Path, repo: Path, capsys, match: str = "", unblock: list[Path] = ()) -> str:
    before = snapshot(repo)
    rc = run([str(src), "--repo", str(repo), "--allow-smoke"], unblock=unblock)
    out, err = capsys.readouterr()
    assert rc == 2, (out + err)[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_return: error: ") and out == "", (out + err)[-2000:]
    assert "Traceback" not in err and match in err, err
    assert snapshot(repo) == before
    return err


def edit_summary(src: Path, change) -> None:
    summary = json.loads((src / "summary.json").read_text())
    change(summary)
    (src / "summary.json").write_text(json.dumps(summary))


def rename_model(src: Path, old: str, new: str, state: Path | None = None) -> None:
    """The summary's model `old` renamed `new`, its state moved to `state` (default NEW.safetensors)."""
    edit_summary(src, lambda s: s["models"].__setitem__(new, s["models"].pop(old)))
    (src / f"{old}.safetensors").rename(state or src / f"{new}.safetensors")


# ---- a good return ------------------------------------------------------------------------

def test_a_good_return_is_put_in_place_and_the_default_gate_is_measured_at_home(src, repo, good_return, capsys,
                                                                                 monkeypatch):
    summary_bytes = (src / "summary.json").read_bytes()
    assert run([str(src), "--repo", str(repo), "--allow-smoke"]) == 0, capsys.readouterr()
    ckpt = repo / "checkpoints" / "rooms.safetensors"
    meta = read_info(ckpt).meta
    assert meta["trained_on"]["images"] == 8 and meta["trained_on"]["device"] == "cpu"
    # The remote file's claims for the gate are kept as what the run reported, not as metrics.
    assert meta["metrics"] == {"co_move_ratio": 0.3, "samples": 4}
    assert meta["gpu_run"]["reported_metrics"]["domain_fd"] == 0.001
    assert (repo / "assets" / "rooms_samples.png").read_bytes() == png(1)
    assert (repo / "assets" / "screenshot.png").read_bytes() == png(9)
    assert json.loads((repo / "checkpoints" / "warm" / "plan.json").read_text())["concurrency_gain"] == 1.2
    assert (repo / "assets" / "gpu_run_summary.json").read_bytes() == summary_bytes
    assert load_warm_state(repo / "checkpoints" / "warm" / "clips.safetensors")[1]["images_seen"] == 8
    table = (repo / "README.md").read_text().split(LOG_START)[1].split(LOG_END)[0]
    assert "| 2026-12-01 10:15 | cpu (smoke) |" in table and "rooms 8, clips 8" in table
    # rooms-cpu measured 0.9 / 0.5 here; the run claims 0.5 / 0.001 for rooms: not measured
    # here, so rooms-cpu stays the default.
    monkeypatch.setattr(bundled, "DEFAULT_CHECKPOINTS", (ckpt, repo / "checkpoints" / "rooms-cpu.safetensors"))
    assert bundled.default_checkpoint() == repo / "checkpoints" / "rooms-cpu.safetensors"
    out = capsys.readouterr().out
    assert "steergan eval checkpoints/rooms.safetensors --store" in out


def test_the_gpu_name_becomes_one_safe_table_cell(src, repo, capsys):
    hostile = "H100\n" + LOG_END + "\n<script>alert(1)</script> | x " + "y" * 100
    edit_summary(src, lambda s: s["machine"].update(gpu=hostile, device="cuda"))
    before = (repo / "README.md").read_text()
    assert run([str(src), "--repo", str(repo), "--allow-smoke"]) == 0, capsys.readouterr()
    after = (repo / "README.md").read_text()
    assert after.count(LOG_END) == 1 and after.count(LOG_START) == 1 and "<script>" not in after
    new_lines = [line for line in after.splitlines() if line not in before.splitlines()]
    assert len(new_lines) == 1 and new_lines[0].count("|") == 7, new_lines
    assert "yyy" in new_lines[0] and "y" * 80 not in new_lines[0]  # capped


def test_a_target_that_cannot_be_written_leaves_everything_as_it_was(src, repo, capsys):
    (repo / "assets" / "rooms_metrics.json").mkdir()  # every other file could be written
    assert_refused(src, repo, capsys, "nothing was replaced")


def test_a_readme_without_the_table_changes_nothing(src, repo, capsys):
    (repo / "README.md").write_text("# no table\n")
    assert_refused(src, repo, capsys, "no training log table")


# ---- item 7: names become paths -----------------------------------------------------------

def test_an_absolute_model_name_is_refused(src, repo, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rename_model(src, "rooms", str(elsewhere / "evil"), elsewhere / "evil.safetensors")
    before = snapshot(elsewhere)
    assert_refused(src, repo, capsys, "not one a GPU run trains")
    assert snapshot(elsewhere) == before


@pytest.mark.parametrize("name", ["../evil", "", "bogus", "rooms/../clips", "rooms-cpu-projected"])
def test_a_model_name_the_run_was_not_asked_to_train_is_refused(src, repo, tmp_path, capsys, name):
    state = src / f"{name}.safetensors"
    state.parent.mkdir(parents=True, exist_ok=True)
    rename_model(src, "rooms", name, state)
    before = snapshot(tmp_path / "out")
    assert_refused(src, repo, capsys, "not one a GPU run trains")
    assert snapshot(tmp_path / "out") == before


def test_another_models_state_under_the_relay_models_name_is_refused(src, repo, tmp_path):
    """rooms-cpu is one the run trains (its state becomes the relay's): a rooms state posing
    as it must not become the relay's state."""
    from models.training.gpu_return import ReturnError, check_model

    shutil.copy(src / "rooms.safetensors", src / "rooms-cpu.safetensors")
    summary = json.loads((src / "summary.json").read_text())
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(ReturnError, match="rooms-cpu.safetensors: .*architecture"):
        check_model("rooms-cpu", summary["models"]["rooms"], summary, src, repo, staging, {}, None)
    assert not (repo / "checkpoints" / "relay").exists()


def test_links_and_subfolders_in_the_returned_folder_are_refused(src, repo, tmp_path, capsys):
    real = tmp_path / "real.safetensors"
    shutil.copy(src / "rooms.safetensors", real)
    (src / "rooms.safetensors").unlink()
    (src / "rooms.safetensors").symlink_to(real)
    assert_refused(src, repo, capsys, "symbolic link")
    (src / "rooms.safetensors").unlink()
    shutil.copy(real, src / "rooms.safetensors")
    (src / "sub").mkdir()
    (src / "sub" / "rooms.safetensors").write_bytes(b"x")
    assert_refused(src, repo, capsys, "subfolder")
    shutil.rmtree(src / "sub")
    shutil.move(src / "summary.json", tmp_path / "summary.json")
    (src / "summary.json").symlink_to(tmp_path / "summary.json")
    assert_refused(src, repo, capsys, "symbolic link")
    (src / "summary.json").unlink()
    shutil.move(tmp_path / "summary.json", src / "summary.json")
    (src / "notes.txt").write_text("x")
    assert_refused(src, repo, capsys, "not a file a GPU run returns")


@pytest.mark.parametrize("member", ["etc/passwd", "rooms/a/b/c.txt", "/abs.txt", "../up.txt", "figures/x.txt"])
def test_bundle_members_outside_the_expected_folders_are_refused(src, repo, capsys, member):
    write_bundle(src / "bundle.tar.gz", {"rooms/log.csv": b"x", member: b"data"})
    assert_refused(src, repo, capsys, "refused")


def test_a_link_in_the_bundle_is_refused(src, repo, capsys):
    write_bundle(src / "bundle.tar.gz", {"rooms/log.csv": b"x"}, links={"rooms/sheets/rooms_drag.png": "/etc/passwd"})
    assert_refused(src, repo, capsys, "link")


# ---- item 8: check everything, then write -------------------------------------------------

def test_a_clips_state_returned_as_rooms_is_refused(src, repo, capsys):
    shutil.copy(src / "clips.safetensors", src / "rooms.safetensors")
    assert_refused(src, repo, capsys, "rooms.safetensors")


def test_a_bad_second_model_changes_nothing_of_the_first(src, repo, capsys):
    (src / "clips.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert_refused(src, repo, capsys, "clips.safetensors")


def test_a_warm_state_over_8_mib_is_refused(src, repo, good_return, capsys):
    modules, info = good_return[2]["rooms"]
    write_state(src / "rooms.safetensors", modules, info, extra_d={"pad": torch.zeros(9 * 2**20 // 2)})
    assert (src / "rooms.safetensors").stat().st_size > 8 * 2**20
    assert_refused(src, repo, capsys, "8 MiB")


@pytest.mark.parametrize("change", [
    {"step": "5"}, {"images_seen": -1}, {"images_seen": True}, {"images_seen": 10 ** 30}, {"train_seconds": "fast"},
    {"train_seconds": float("inf")}, {"device": 5}, {"history": [1]}, {"history": {"runs": 5}},
    {"history": {"runs": [], "curve": "x"}}, {"history": {"runs": [], "curve": [["a", 1]]}}, {"config": [1]},
    {"config": "dataset"},
], ids=lambda c: repr(c)[:40])
def test_warm_state_infos_the_next_run_cannot_read_are_refused(src, repo, good_return, capsys, change):
    modules, info = good_return[2]["rooms"]
    write_state(src / "rooms.safetensors", modules, {**info, **change})
    assert_refused(src, repo, capsys, "rooms.safetensors")


@pytest.mark.parametrize("key,value", [("dataset", "figures"), ("architecture", "tiny-clips"),
                                       ("condition_d_on_layout", False), ("recipe", "stylegan2")])
def test_a_warm_state_trained_for_another_config_is_refused(src, repo, good_return, capsys, key, value):
    modules, info = good_return[2]["rooms"]
    write_state(src / "rooms.safetensors", modules, {**info, "config": {**info["config"], key: value}})
    assert_refused(src, repo, capsys, f"trained with {key}=")


# ---- item 9: bounded, typed, no hangs -----------------------------------------------------

def test_a_gzip_bomb_is_refused_quickly(src, repo, capsys):
    size = MAX_UNPACKED_BYTES + 16 * 2**20
    write_bundle(src / "bundle.tar.gz", {"rooms/log.csv": bytes(size)}, level=9)
    assert (src / "bundle.tar.gz").stat().st_size < 2**20
    start = time.perf_counter()
    assert_refused(src, repo, capsys, "unpacks to more than 64 MiB")
    assert time.perf_counter() - start < 60
    with pytest.raises(ReturnError, match="unpacks to more than"):
        read_bundle(src / "bundle.tar.gz")


def test_a_summary_over_1_mib_is_refused(src, repo, capsys):
    edit_summary(src, lambda s: s.update(padding="x" * (2 * 2**20)))
    assert_refused(src, repo, capsys, "summary.json")


@pytest.mark.parametrize("name", ["summary.json", "bundle.tar.gz", "rooms.safetensors"])
def test_a_fifo_in_the_returned_folder_is_refused_without_waiting(src, repo, capsys, name):
    (src / name).unlink()
    os.mkfifo(src / name)
    assert_refused(src, repo, capsys, "FIFO", unblock=[src / name])


MALFORMED_SUMMARIES = {
    "a list": b"[]",
    "deep nesting": b"[" * 100_000,
    "a 5,000-digit number": b'{"format": "steergan-gpu-run", "budget_s": ' + b"1" * 5000 + b"}",
    "bad UTF-8": b'{"format": "\xff\xfe"}',
    "not JSON": b"{nope",
}
MALFORMED_FIELDS = {
    "models a list": lambda s: s.update(models=[]),
    "a result a number": lambda s: s["models"].update(rooms=5),
    "machine a string": lambda s: s.update(machine="x"),
    "started a number": lambda s: s.update(started=5),
    "smoke a string": lambda s: s.update(smoke="yes"),
    "train_seconds a string": lambda s: s["models"]["rooms"].update(train_seconds="x"),
    "images_after a string": lambda s: s["models"]["rooms"].update(images_after="many"),
    "metrics a list": lambda s: s["models"]["rooms"].update(metrics=[1]),
    "a 400-digit metric": lambda s: s["models"]["rooms"]["metrics"].update(domain_fd=10 ** 400),
    "a metric a string": lambda s: s["models"]["rooms"]["metrics"].update(domain_fd="low"),
    "phase a list": lambda s: s["models"]["rooms"].update(phase=[]),
    "next_plan a list": lambda s: s.update(next_plan=[1, 2]),
    "next_plan an unknown mode": lambda s: s.update(next_plan={"mode": "fast"}),
    "next_plan an unknown field": lambda s: s.update(next_plan={"mode": "concurrent", "evil": 1}),
    "next_plan channels_last a string": lambda s: s.update(next_plan={"channels_last": "yes"}),
    "a gpu name a list": lambda s: s["machine"].update(gpu=["x"]),
}


@pytest.mark.parametrize("text", MALFORMED_SUMMARIES.values(), ids=MALFORMED_SUMMARIES.keys())
def test_a_malformed_summary_is_one_line(src, repo, capsys, text):
    (src / "summary.json").write_bytes(text)
    assert_refused(src, repo, capsys, "summary.json")


@pytest.mark.parametrize("change", MALFORMED_FIELDS.values(), ids=MALFORMED_FIELDS.keys())
def test_summary_fields_of_the_wrong_type_are_one_line(src, repo, capsys, change):
    edit_summary(src, change)
    assert_refused(src, repo, capsys)


@pytest.mark.parametrize("member", ["rooms/sheets/screenshot.png", "rooms/sheets/clips_samples.png",
                                    "rooms/sheets/rooms_samples.txt", "clips/sheets/../../screenshot.png"])
def test_a_sheet_lands_only_on_its_own_name(src, repo, capsys, member):
    write_bundle(src / "bundle.tar.gz", {"rooms/sheets/rooms_samples.png": png(1), member: png(3)})
    assert_refused(src, repo, capsys, "refused")


def test_a_sheet_that_is_not_a_png_is_refused(src, repo, capsys):
    write_bundle(src / "bundle.tar.gz", {"rooms/sheets/rooms_samples.png": b"<html>"})
    assert_refused(src, repo, capsys, "not a PNG")


def tiles_return(tmp_path: Path, tiles: bytes) -> Path:
    """A returned folder with no models but the tuned tiles of a GPU run on 'GPU A'."""
    src = tmp_path / "tiles-out"
    src.mkdir()
    (src / "summary.json").write_text(json.dumps({"format": "steergan-gpu-run", "smoke": False,
                                                  "machine": {"gpu": "GPU A"}, "models": {}}))
    write_bundle(src / "bundle.tar.gz", {"kernels/tuned_tiles.json": tiles})
    return src


FWD = {"block_m": 64, "block_n": 128, "block_k": 16, "num_warps": 8, "num_stages": 2}


@pytest.mark.parametrize("value", ["true", "1" + "0" * 300, "64.0", "0", "-64", "2048"])
def test_tuned_tiles_must_be_small_integers(repo, tmp_path, capsys, value):
    text = json.dumps({"GPU A": {"fwd": {**FWD, "block_m": 0}}}).replace('"block_m": 0', f'"block_m": {value}')
    assert_refused(tiles_return(tmp_path, text.encode()), repo, capsys, "tuned_tiles.json")


def test_good_tuned_tiles_come_home_and_a_deep_home_file_is_one_line(repo, tmp_path, capsys):
    src = tiles_return(tmp_path, json.dumps({"GPU A": {"fwd": FWD}}).encode())
    assert run([str(src), "--repo", str(repo), "--no-readme"]) == 0, capsys.readouterr()
    assert json.loads((repo / "kernels" / "tuned_tiles.json").read_text()) == {"GPU A": {"fwd": FWD}}
    capsys.readouterr()
    (repo / "kernels" / "tuned_tiles.json").write_text("[" * 100_000)
    assert_refused(src, repo, capsys, "tuned_tiles.json")
