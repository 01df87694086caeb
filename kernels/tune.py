"""Times each candidate tile configuration of the MTM kernels on this GPU and keeps the fastest.

    python -m kernels.tune [--json PATH] [--write-tuned PATH] [--if-untuned] [--budget S]

For each kernel (forward, data gradient, weight gradient) every member of
triton_mtm.CANDIDATES runs at the training shape in bfloat16 (what training runs; the shape
the GPU run's kernel decision reads). A candidate counts only if its output matches the
default configuration's; the fastest (median of triton.testing.do_bench) becomes this GPU
model's entry in the tuned-tiles file when it beats the default by more than 3 % (else the
default is recorded). Tuning is once per GPU model and kernel: with --if-untuned the kernels
the file already has for this GPU are skipped. Kernels are done one at a time and the file is
written after each, so a run cut short keeps what it finished. It needs a CUDA device, or
Triton's interpreter (TRITON_INTERPRET=1, as its CPU test runs it: the times mean nothing
there, but every path runs).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import stat
import sys
import tempfile
import time

import torch

from . import bench, modconv_ref
from . import triton_mtm as T

TRAINING_SHAPE = (32, 256, 32)  # B, C, H: as kernels.bench's QUICK_SHAPES[0]
WIN = 0.97  # a candidate must take less than this fraction of the default's time
# Relative tolerance against the default's output: the tiles only change the order of the
# fp32 sums, but bf16 outputs round differently when those sums differ in the last bits.
TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 5e-3, torch.float32: 2e-3}


def _device() -> str:
    return "cuda" if torch.cuda.is_available() and not T.INTERPRETED else "cpu"


def _inputs(shape: tuple[int, int, int], dtype: torch.dtype, device: str):
    """The benchmark's inputs (kernels.bench) and an output gradient."""
    b, c, h = shape
    x, w, off, style = bench._inputs(b, c, h, dtype, False, device)
    gy = torch.randn(b, c, h, h, device=device, generator=torch.Generator(device=device).manual_seed(1)).to(dtype)
    return x, w, off, style, gy


def _runner(kernel: str, tile: T.TileConfig, inputs):
    """A function running one kernel with `tile`, returning what it computes."""
    x, w, off, style, gy = inputs
    opts = T.Options(tiles=(tile,))
    if kernel == "fwd":
        d = modconv_ref._demodulation(w, style, 1e-8, padding=1).to(x.dtype)
        return lambda: [T.forward(x, w, off, None, style, d, opts)]
    # Each backward kernel alone: the data kernel gives x, offset and style gradients, the
    # weight kernel the weight gradient.
    needs = (True, False, True, False, True) if kernel == "bwd_data" else (False, True, False, False, False)
    return lambda: [g for g in T.backward(gy, x, w, off, None, style, needs, opts) if g is not None]


def _time_ms(fn, device: str) -> float:
    if device == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median"))
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _max_rel_err(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """The largest relative error over the tensors; NaN if any has one (Python's max would
    drop a NaN that is not first)."""
    errs = [float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))
            for a, b in zip(got, want)]
    return float("nan") if any(math.isnan(e) for e in errs) else max(errs)


def tune_kernel(kernel: str, shape: tuple[int, int, int], dtype: torch.dtype, device: str,
                deadline: float) -> dict:
    """Every candidate of `kernel`: its time, its error against the default, or why it failed."""
    default = T.CONFIGS[kernel] if not T.INTERPRETED else T.INTERPRETER_CONFIGS[kernel]
    candidates = [default] + [c for c in T.CANDIDATES[kernel] if c != T.CONFIGS[kernel]]
    rows: list[dict] = []
    if time.time() > deadline:  # not even the default's output: nothing to compare with
        rows = [{"config": dataclasses.asdict(c), "default": c == default, "error": "not timed: out of time"}
                for c in candidates]
        return {"kernel": kernel, "rows": rows, "default_ms": None, "complete": False, "best": None,
                "best_ms": None}
    inputs = _inputs(shape, dtype, device)
    want = _runner(kernel, default, inputs)()
    for tile in candidates:
        row: dict = {"config": dataclasses.asdict(tile), "default": tile == default}
        if time.time() > deadline:
            row["error"] = "not timed: out of time"
            rows.append(row)
            continue
        try:
            fn = _runner(kernel, tile, inputs)
            err = _max_rel_err(fn(), want)
            row["max_rel_err"] = err
            if not err <= TOLERANCE[dtype]:  # NaN fails too
                row["error"] = f"output differs from the default's by {err:.3g} (tolerance {TOLERANCE[dtype]})"
            else:
                row["ms"] = round(_time_ms(fn, device), 4)
        except Exception as exc:  # noqa: BLE001  a tile that does not compile or fit is skipped, and said
            row["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        rows.append(row)
    timed = [r for r in rows if "ms" in r]
    base = next((r["ms"] for r in timed if r["default"]), None)
    best = min(timed, key=lambda r: r["ms"], default=None)
    won = best is not None and base is not None and best["ms"] < WIN * base
    # The default, when nothing beats it, is recorded too: this GPU model is then tuned.
    return {"kernel": kernel, "shape": list(shape), "dtype": str(dtype).removeprefix("torch."), "rows": rows,
            "default_ms": base, "complete": all("out of time" not in r.get("error", "") for r in rows),
            "best": best["config"] if won and best else dataclasses.asdict(T.CONFIGS[kernel]),
            "best_ms": best["ms"] if won and best else base}


def write_tuned(path: str, gpu: str, kernel: str, config: dict) -> None:
    """Set `gpu`'s tile for `kernel` in the tuned-tiles file, atomically (a file that is not
    a JSON object, or cannot be read at all -- a FIFO, deep nesting -- is started afresh:
    the kernels ignored it anyway, with a warning)."""
    data: object = {}
    try:
        data = T.read_json_file(path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        print(f"kernels.tune: {path}: cannot be read ({exc}); starting it afresh", file=sys.stderr)
    if not isinstance(data, dict):
        data = {}
    if not isinstance(data.get(gpu, {}), dict):
        data[gpu] = {}
    data.setdefault(gpu, {})[kernel] = {k: v for k, v in config.items() if k != "kernel"}
    _write_json(path, data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.tune", description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every candidate's result here")
    parser.add_argument("--write-tuned", metavar="PATH", help="the tuned-tiles file to update (e.g. "
                        "kernels/tuned_tiles.json)")
    parser.add_argument("--if-untuned", action="store_true",
                        help="skip the kernels PATH already has a tile for on this GPU")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds; candidates past it are not timed")
    parser.add_argument("--deadline", type=float, help="the same as a wall-clock time (time.time()), which "
                        "counts the start-up too; overrides --budget")
    parser.add_argument("--shape", type=int, nargs=3, default=TRAINING_SHAPE, metavar=("B", "C", "H"))
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--kernel", action="append", choices=sorted(T.CANDIDATES),
                        help="kernel(s) to tune (default: all three)")
    args = parser.parse_args(argv)
    deadline = args.deadline if args.deadline is not None else time.time() + args.budget
    device = _device()
    if device == "cpu" and not T.INTERPRETED:
        print("kernels.tune: needs a CUDA device (or TRITON_INTERPRET=1, which its CPU test sets)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)"
    report: dict = {"gpu": gpu, "torch": torch.__version__, "kernels": [], "skipped": []}
    done = T.read_tuned(args.write_tuned).get(gpu, {}) if args.if_untuned and args.write_tuned else {}
    for kernel in args.kernel or ("fwd", "bwd_data", "bwd_weight"):
        if kernel in done:  # once per GPU model and kernel
            report["skipped"].append(kernel)
            print(f"{kernel}: {args.write_tuned} already has a tile for {gpu}")
            continue
        result = tune_kernel(kernel, tuple(args.shape), getattr(torch, args.dtype), device, deadline)
        report["kernels"].append(result)
        if args.write_tuned and result["complete"] and result["default_ms"] is not None:
            write_tuned(args.write_tuned, gpu, kernel, result["best"])  # a sweep cut short decides nothing
        if args.json:  # after each kernel: a process killed at its limit still reports what it did
            _write_json(args.json, report)
        print(f"{kernel}: default {result['default_ms']} ms, best {result['best_ms']} ms {result['best']}; " +
              ", ".join(f"{r['config']['block_m']}x{r['config']['block_n']}x{r['config']['block_k']}"
                        f"/w{r['config']['num_warps']}/s{r['config']['num_stages']}: "
                        f"{r.get('ms', r.get('error'))}" for r in result["rows"]), flush=True)
    if args.json:
        _write_json(args.json, report)
    return 0


def _write_json(path: str, data: dict) -> None:
    """Atomically (kernels/ may not use models/'s writer): into a temporary file of a fresh
    random name beside `path` (mkstemp: O_CREAT | O_EXCL | O_NOFOLLOW, so never through a
    link someone left at a predictable name), flushed, then renamed over `path` (which
    replaces a link at `path` itself rather than writing through it). The file keeps the
    mode of the one it replaces (mkstemp's is 0600)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_to_keep(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _mode_to_keep(path: str) -> int:
    """The permission bits of the regular file at `path`, else those of a new file under
    the usual umask 022."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0o644
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else 0o644


if __name__ == "__main__":
    sys.exit(main())
