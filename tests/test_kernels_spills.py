"""Every Triton tile configuration (defaults and tuning candidates) compiles for an H100 (sm_90)
without register spills.

No GPU needed: kernels.spill_check compiles with triton's own ptxas and reads the register
and stack use from the cubin. It runs in a subprocess without TRITON_INTERPRET, since the
kernels imported in this process may be the interpreter's (tests/conftest.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

triton = pytest.importorskip("triton", reason="triton is an optional extra (Linux x86-64 only)")

PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


@pytest.mark.skipif(not os.path.exists(PTXAS), reason=f"this triton ships no NVIDIA ptxas ({PTXAS})")
def test_tile_configurations_compile_for_sm90_without_spills():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # triton's default, set to silence its notice about it
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    # Every tile a GPU may run: the defaults and the candidates kernels.tune may choose.
    done = subprocess.run([sys.executable, "-m", "kernels.spill_check", "--candidates"], capture_output=True,
                          text=True, env=env, cwd=root, timeout=900)
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    from kernels.triton_mtm import CANDIDATES

    expected = 2 * sum(len(c) for c in CANDIDATES.values())
    assert len(results) == expected, \
        f"expected {expected} (tiles x 2 dtypes), got:\n{done.stdout}\n{done.stderr[-3000:]}"
    for r in results:
        assert r["registers"] > 0
        assert r["stack_bytes"] == 0 and r["local_bytes"] == 0, f"register spills: {r}"
    assert done.returncode == 0, done.stderr[-3000:]
