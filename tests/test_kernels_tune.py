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
