"""Times the MTM operator on a GPU: the Triton kernel against the alternatives.

    python -m kernels.bench [--json PATH] [--quick]

For each (B, C, H) (C in = C out, H = W, a spatial style as the generators use, no mask)
and each dtype, forward and forward+backward, in milliseconds (median of triton.testing's
do_bench):
- cudnn: the plain modulated convolution of the same shape (modulated_conv2d): the floor;
- torchvision: deform_conv2d with the same modulation and demodulation around it, where
  torchvision is installed (it has no bfloat16 kernel: its bf16 row runs in float16);
- reference: kernels.modconv_ref.deform_modconv;
- triton: kernels.triton_mtm.deform_modconv, called directly (so a failure shows, rather
  than falling back to the reference as kernels.dispatch does).
Without a CUDA device it says so and exits with status 0, writing the reason to the JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import TypedDict

import torch

from . import modconv_ref

SHAPES = [(1, 512, 8), (1, 512, 16), (1, 256, 32), (16, 512, 32), (32, 256, 32), (64, 512, 32)]
# --quick (the GPU run: at most ~35 s): the training shape first, so that a run cut short still
# tells whether the kernel beats the reference where training uses it.
QUICK_SHAPES = [(32, 256, 32), (1, 512, 8)]
METHODS = ("cudnn", "torchvision", "reference", "triton")
# Where the benchmark runs; a test runs it on the CPU under Triton's interpreter to check the
# table and JSON code (numbers from there mean nothing).
DEVICE = "cuda"


class _RowBase(TypedDict):
    """One row of the report: a shape, a dtype and a pass, timed by every method."""
    B: int
    C: int
    H: int
    dtype: str
    passes: str
    ms: dict[str, float]  # method -> milliseconds
    errors: dict[str, str]  # method -> why it has no time


class _Row(_RowBase, total=False):
    ratios: dict[str, float]  # "ours/cudnn", "torchvision/ours", "reference/ours", where both ran


def _torchvision_op():
    try:
        from torchvision.ops import deform_conv2d
    except Exception:  # noqa: BLE001  not installed, or built for another torch
        return None

    def op(x, w, off, style, eps=1e-8):
        d = modconv_ref._demodulation(w, style, eps, padding=1)
        return deform_conv2d(x * style, off, w, padding=1) * d
    return op


def _triton_op():
    try:
        from . import triton_mtm
    except Exception as err:  # noqa: BLE001  triton not installed, or fails while loading
        return None, f"{type(err).__name__}: {err}"
    return (lambda x, w, off, style: triton_mtm.deform_modconv(x, w, off, None, style)), None


def _inputs(b, c, h, dtype, grad, device=None):
    """x, weight, offsets of a few pixels, spatial style (kernels.tune times the same)."""
    device = device or DEVICE
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(b, c, h, h, device=device, generator=g).to(dtype)
    w = (torch.randn(c, c, 3, 3, device=device, generator=g) / (3 * c ** 0.5)).to(dtype)
    off = (2 * torch.randn(b, 18, h, h, device=device, generator=g)).to(dtype)
    style = (1 + 0.2 * torch.randn(b, c, h, h, device=device, generator=g)).to(dtype)
    return [t.requires_grad_(grad) for t in (x, w, off, style)]


def _time(fn, quick):
    import triton.testing
    return triton.testing.do_bench(fn, warmup=10 if quick else 25, rep=30 if quick else 100, return_mode="median")


def _sync():
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def _measure(op, b, c, h, dtype, backward, quick, takes_offset=True):
    inputs = _inputs(b, c, h, dtype, backward)
    args = inputs if takes_offset else [inputs[0], inputs[1], inputs[3]]
    if not backward:
        def run():
            with torch.no_grad():
                op(*args)
    else:
        gy = torch.randn(b, c, h, h, device=DEVICE, dtype=dtype)

        def run():
            torch.autograd.grad(op(*args), args, gy)
    run()  # compile, allocate
    _sync()
    return _time(run, quick)


def run_benchmark(quick: bool, json_path: str | None) -> dict:
    import triton  # the timer; the GPU machine has it whatever else is missing

    tv = _torchvision_op()
    ours, ours_missing = _triton_op()
    ops = {"cudnn": (lambda x, w, style: modconv_ref.modulated_conv2d(x, w, style), False),
           "torchvision": (tv, True),
           "reference": (lambda x, w, off, style: modconv_ref.deform_modconv(x, w, off, None, style), True),
           "triton": (ours, True)}
    report = dict(device=torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE, torch=torch.__version__,
                  triton=triton.__version__, cuda=torch.version.cuda, python=platform.python_version(), quick=quick,
                  tf32=torch.backends.cudnn.allow_tf32, unit="ms", rows=[],
                  notes={"torchvision": "not installed" if tv is None else "float16 in the bfloat16 rows",
                         "triton": ours_missing or "kernels.triton_mtm"})
    print(f"# {report['device']}, torch {report['torch']}, triton {report['triton']}, CUDA {report['cuda']}")
    header = f"{'B':>3} {'C':>4} {'H':>3} {'dtype':>8} {'pass':>7} " + " ".join(f"{m:>11}" for m in METHODS) + \
        f" {'ours/cudnn':>10} {'tv/ours':>8} {'ref/ours':>8}"
    print(header)
    for b, c, h in (QUICK_SHAPES if quick else SHAPES):
        for dtype in (torch.bfloat16, torch.float32) if quick else (torch.float32, torch.bfloat16):
            for backward in (False, True):
                row = _Row(B=b, C=c, H=h, dtype=str(dtype).removeprefix("torch."),
                           passes="fwd+bwd" if backward else "fwd", ms={}, errors={})
                for name in METHODS:
                    op, takes_offset = ops[name]
                    if op is None:
                        continue
                    run_dtype = torch.float16 if name == "torchvision" and dtype == torch.bfloat16 else dtype
                    try:
                        row["ms"][name] = round(_measure(op, b, c, h, run_dtype, backward, quick, takes_offset), 4)
                    except torch.cuda.OutOfMemoryError:
                        row["errors"][name] = "out of memory"
                    except Exception as err:  # noqa: BLE001 -- a failing method is a result, not a crash
                        row["errors"][name] = f"{type(err).__name__}: {str(err)[:300]}"
                    _sync()
                ms = row["ms"]
                ours_ms = ms.get("triton")
                row["ratios"] = {k: round(v, 3) for k, v in (
                    ("ours/cudnn", ours_ms / ms["cudnn"] if ours_ms and "cudnn" in ms else None),
                    ("torchvision/ours", ms["torchvision"] / ours_ms if ours_ms and "torchvision" in ms else None),
                    ("reference/ours", ms["reference"] / ours_ms if ours_ms and "reference" in ms else None),
                ) if v is not None}
                report["rows"].append(row)
                cells = " ".join(f"{ms[m]:>11.4f}" if m in ms else f"{'-':>11}" for m in METHODS)
                ratios = " ".join(f"{row['ratios'].get(k, float('nan')):>{n}.2f}"
                                  for k, n in (("ours/cudnn", 10), ("torchvision/ours", 8), ("reference/ours", 8)))
                print(f"{b:>3} {c:>4} {h:>3} {row['dtype']:>8} {row['passes']:>7} {cells} {ratios}", flush=True)
                for name, message in row["errors"].items():
                    print(f"    {name}: {message}", flush=True)
                if json_path:  # after every row: a run cut short still leaves its numbers
                    _write(json_path, report)
    return report


def _write(path: str, report: dict) -> None:
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results here as JSON")
    parser.add_argument("--quick", action="store_true",
                        help=f"only {QUICK_SHAPES} and shorter timing (about a minute on an H100)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        reason = "no CUDA device: the MTM kernel benchmark needs a GPU, nothing was measured"
        print(reason)
        if args.json:
            _write(args.json, dict(skipped=reason, torch=torch.__version__, python=platform.python_version()))
        return 0
    start = time.perf_counter()
    report = run_benchmark(args.quick, args.json)
    report["seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        _write(args.json, report)
    print(f"# {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
