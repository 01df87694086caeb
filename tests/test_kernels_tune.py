"""The tile sweep (kernels/tune.py) and the tuned-tiles file the kernels read.

Without a GPU the sweep runs under Triton's interpreter at a tiny shape: its times mean
nothing there, but every candidate tile must compute what the default tile computes (the
GPU then only has to time them), and the file it writes must be what the kernels accept.
"""
from __future__ import annotations

import json
import warnings

import pytest
import torch

pytest.importorskip("triton", reason="triton is an optional extra (Linux x86-64 only)")

from kernels import triton_mtm as T
from kernels import tune


def test_every_candidate_tile_computes_what_the_default_computes(tmp_path):
    tiles = tmp_path / "tuned_tiles.json"
    # 9 x 9 = 81 pixels: a partial last tile for every block_m (32, 64, 128) of the candidates.
    rc = tune.main(["--shape", "1", "8", "9", "--budget", "900", "--json", str(tmp_path / "t.json"),
                    "--write-tuned", str(tiles)])
    assert rc == 0
    report = json.loads((tmp_path / "t.json").read_text())
    assert [k["kernel"] for k in report["kernels"]] == ["fwd", "bwd_data", "bwd_weight"]
    for k in report["kernels"]:
        assert len(k["rows"]) == len(T.CANDIDATES[k["kernel"]]), k["kernel"]
        for row in k["rows"]:  # each tile ran and matched the default's output
            assert "error" not in row and row["ms"] > 0, row
            assert row["max_rel_err"] <= tune.TOLERANCE[torch.bfloat16], row
    # What it wrote is what the kernels take: exact candidates (the default where none beat
    # it by 3 %), under this machine's name, one per kernel.
    written = json.loads(tiles.read_text())[report["gpu"]]
    assert {kernel: {**fields, "kernel": kernel} for kernel, fields in written.items()} \
        == {k["kernel"]: k["best"] for k in report["kernels"]}
    assert set(T.read_tuned(str(tiles))[report["gpu"]]) == {"fwd", "bwd_data", "bwd_weight"}
    # Once per GPU model and kernel: the second run leaves the file alone.
    before = tiles.read_text()
    assert tune.main(["--if-untuned", "--write-tuned", str(tiles), "--json", str(tmp_path / "t2.json")]) == 0
    again = json.loads((tmp_path / "t2.json").read_text())
    assert again["skipped"] == ["fwd", "bwd_data", "bwd_weight"] and again["kernels"] == []
    assert tiles.read_text() == before


def test_the_tuned_file_gives_only_candidates(tmp_path):
    path = tmp_path / "tiles.json"
    good = {k: v for k, v in T.dataclasses.asdict(T.CANDIDATES["fwd"][1]).items() if k != "kernel"}
    path.write_text(json.dumps({"GPU A": {"fwd": good, "bwd_data": {"block_m": 4096, "block_n": 1, "block_k": 1,
                                                                     "num_warps": 64, "num_stages": 9}}}))
    with pytest.warns(RuntimeWarning, match="not a candidate tile"):
        tuned = T.read_tuned(str(path))
    assert tuned == {"GPU A": {"fwd": T.CANDIDATES["fwd"][1]}}
    path.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        assert T.read_tuned(str(path)) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert T.read_tuned(str(tmp_path / "absent.json")) == {}  # no file: the defaults, silently


def test_an_error_of_nan_in_any_output_fails_the_candidate():
    ones = torch.ones(3)
    assert tune._max_rel_err([ones, ones], [ones, ones]) == 0
    assert tune._max_rel_err([ones, torch.tensor([1.0, float("nan"), 1.0])], [ones, ones]) != 0  # NaN, not 0


def test_tuned_tiles_serve_only_cuda_problems_as_large_as_the_training_shape():
    cuda = torch.device("cuda", 0)
    assert T._wants_tuned(cuda, 32 * 32 * 32) and T._wants_tuned(cuda, T.TUNED_MIN_PIXELS)
    assert not T._wants_tuned(cuda, 8 * 8)  # a batch-1 render at 8 px keeps the default tiles
    assert not T._wants_tuned(torch.device("cpu"), 32 * 32 * 32) and not T._wants_tuned(None, 10 ** 6)


def test_options_tiles_override_the_kernel_configs():
    tile = T.CANDIDATES["bwd_weight"][2]
    configs = T._configs(T.Options(tiles=(tile,)), torch.device("cpu"))
    assert configs["bwd_weight"] == tile
    assert configs["fwd"] == (T.INTERPRETER_CONFIGS if T.INTERPRETED else T.CONFIGS)["fwd"]
    assert all(T.CONFIGS[k] == c[0] for k, c in T.CANDIDATES.items())  # the default is a candidate, first


# ---- the tuned-tiles file as untrusted input (issue 25, item 10) --------------------------

def _returns_within(fn, seconds: float = 60, fifo=None):
    """fn(), failing the test instead of hanging (a FIFO opened for reading waits for a writer)."""
    import os
    import threading

    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(value=fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if fifo is not None:  # give the blocked open a writer, so the thread can end
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        pytest.fail(f"did not return within {seconds} s")
    return result.get("value")


def _fields(tile: T.TileConfig) -> dict:
    return {k: v for k, v in T.dataclasses.asdict(tile).items() if k != "kernel"}


def test_a_deep_or_fifo_tuned_file_gives_the_defaults_with_a_warning(tmp_path):
    import os

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.warns(RuntimeWarning, match="nested too deeply"):
        assert T.read_tuned(str(deep)) == {}
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.warns(RuntimeWarning, match="not a regular file"):
        assert _returns_within(lambda: T.read_tuned(str(fifo)), fifo=fifo) == {}
    huge = tmp_path / "huge.json"
    huge.write_text('{"GPU A": {}, "pad": "' + "x" * T.MAX_TUNED_BYTES + '"}')
    with pytest.warns(RuntimeWarning, match="more than"):
        assert T.read_tuned(str(huge)) == {}


@pytest.mark.parametrize("value", ["true", "1" + "0" * 300, "64.0", "6.4e1"])
def test_tile_values_must_be_plain_integers(tmp_path, value):
    """A candidate's 64 must not be matched by 64.0 (64.0 == 64 in Python), true or 10**300."""
    good = _fields(T.CANDIDATES["fwd"][1])
    path = tmp_path / "tiles.json"
    text = json.dumps({"GPU A": {"fwd": {**good, "block_m": -1}}}).replace('"block_m": -1', f'"block_m": {value}')
    path.write_text(text)
    with pytest.warns(RuntimeWarning, match="not a candidate tile"):
        assert T.read_tuned(str(path)) == {}
    path.write_text(json.dumps({"GPU A": {"fwd": {**good, "num_stages": 2.0}}}))
    with pytest.warns(RuntimeWarning, match="not a candidate tile"):
        assert T.read_tuned(str(path)) == {}


def test_the_sweep_never_writes_through_a_link_at_a_predictable_name(tmp_path):
    import os
    import stat

    path = tmp_path / "tuned_tiles.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "tuned_tiles.json.tmp").symlink_to(victim)  # the old fixed temporary name
    fwd = T.dataclasses.asdict(T.CANDIDATES["fwd"][1])
    tune.write_tuned(str(path), "GPU A", "fwd", fwd)
    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and json.loads(path.read_text()) == {"GPU A": {"fwd": _fields(T.CANDIDATES["fwd"][1])}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tuned_tiles.json", "tuned_tiles.json.tmp", "victim.txt"]
    os.chmod(path, 0o640)  # a rewrite keeps the file's mode
    tune.write_tuned(str(path), "GPU B", "fwd", fwd)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 and set(json.loads(path.read_text())) == {"GPU A", "GPU B"}


def test_the_sweep_starts_afresh_over_a_deep_or_fifo_file_without_hanging(tmp_path):
    import os

    fwd = T.dataclasses.asdict(T.CANDIDATES["fwd"][1])
    deep = tmp_path / "deep.json"
    deep.write_text("{" * 100_000)
    tune.write_tuned(str(deep), "GPU A", "fwd", fwd)
    assert set(T.read_tuned(str(deep))["GPU A"]) == {"fwd"}
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    _returns_within(lambda: tune.write_tuned(str(fifo), "GPU A", "fwd", fwd), fifo=fifo)
    assert fifo.is_file() and set(T.read_tuned(str(fifo))["GPU A"]) == {"fwd"}
