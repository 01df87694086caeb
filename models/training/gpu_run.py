"""One command for a GPU machine: train, test and measure in a fixed budget, and continue
where the previous run stopped.

    python3 -m models.training.gpu_run --budget 540 --out $OUT          # on the GPU machine
    python3 -m models.training.gpu_run --smoke --budget 30 --out /tmp/o  # the same path on a CPU

Phases, each with a deadline derived from --budget (seconds of wall time in all):
 1. the machine (GPU, driver, torch, triton, commit) into summary.json;
 2. the Triton MTM kernel's tests and benchmark if the kernel exists (at most 90 s); the
    models use the kernel only if its tests passed (STEERGAN_MTM_KERNEL in their env);
 3. training: the models of GPU_RUN_MODELS (configs.py), one process each, concurrently on the
    one GPU (or one after another if the previous run measured that to be faster), each
    warm-started from checkpoints/warm/NAME.safetensors, each writing its small state into
    --out every 2 minutes (atomically), so that a run killed at its limit returns the latest;
 4. per model after training: a checkpoint, sample sheets, `steergan eval`'s metrics (small
    sample counts; a model still evaluating at the deadline is stopped);
 5. measuring: training images/s of each model alone (the together rates come from phase
    3), batch-1 render latency p50/p95 over 200 renders with the kernel and the reference;
 6. packing: NAME.safetensors per model, summary.json and bundle.tar.gz (logs, sheets,
    metrics, kernel and bench output) -- at most 8 files, 16 MiB each, 64 MiB in all.
Bring the files home with `python -m models.training.gpu_return DIR`. Never imports Qt.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.document.fileio import atomic_write_json as write_json
from models.document.fileio import locked

ROOT = Path(__file__).resolve().parents[2]
WARM_DIR = ROOT / "checkpoints" / "warm"
PLAN_FILE = "plan.json"  # in WARM_DIR: what the previous run measured (concurrency, memory format)
BUNDLE = "bundle.tar.gz"
SUMMARY = "summary.json"
OUT_LOCK = "out.lock"  # in the work folder: one writer into --out at a time (fileio.locked)
MiB = 1 << 20
LIMITS = {"files": 8, "file_bytes": 16 * MiB, "total_bytes": 64 * MiB, "depth": 2}
BUNDLE_MAX = 15 * MiB
KERNEL_TESTS = "tests/test_kernels_triton.py"
KERNEL_BENCH = "kernels/bench.py"
KERNEL_ENV = "STEERGAN_MTM_KERNEL"
KERNEL_TUNE = "kernels/tune.py"
TUNED_TILES = "kernels/tuned_tiles.json"  # what gpu_return brings home from work/kernels/
TILES_ENV = "STEERGAN_MTM_TILES"  # kernels.triton_mtm.TILES_ENV (kernels may not be importable here)
# The tile sweep's share of the kernel phase: compiling and timing 15 candidates takes about
# 30-40 s; the quick benchmark after it about 25 s.
TUNE_SECONDS, BENCH_SECONDS = 40.0, 28.0
KERNEL_TEST_SELECTION = "gpu_ or gradients_match_reference_autograd"  # pytest -k on the GPU

# Seconds kept after training for each later phase. Smoke: the tiny models on a CPU.
# bench: 85 s (was 70: with six models the kernel's "alone" rates ran out of time, session 17)
RESERVES = {"gpu": {"eval": 70, "bench": 85, "pack": 15, "kernels": 90},
            "smoke": {"eval": 8, "bench": 8, "pack": 3, "kernels": 20, "save_grace": 30}}
EVAL_COUNTS = {"gpu": (128, 512), "smoke": (4, 16)}  # (samples, fd_samples) of `steergan eval`


class Stop(Exception):
    """SIGTERM/SIGINT: stop the workers, pack what there is, write the summary."""


def log(msg: str) -> None:
    print(f"[gpu_run {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def read_json(path: Path, max_bytes: int = 1 << 20) -> dict | None:
    """A small JSON file of ours (plan.json, the tuned tiles), or None: through the checked
    readers, so a FIFO, a huge file or deep nesting cannot hang or crash the run."""
    from models.document.fileio import FileProblem, JSONProblem, loads_checked, read_regular

    try:
        data = loads_checked(read_regular(path, max_bytes), str(path))
    except (FileProblem, JSONProblem):
        return None
    return data if isinstance(data, dict) else None


def _cmd(args: list[str], timeout: float) -> str | None:
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine(device: str) -> dict:
    import platform
    from importlib import metadata

    import torch

    info: dict[str, Any] = {
        "host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cpu_count": os.cpu_count(), "device": device,
        "commit": _cmd(["git", "rev-parse", "HEAD"], 5), "dirty": bool(_cmd(["git", "status", "--porcelain"], 5))}
    # The GPU machine gets a copy of the working tree without .git: a digest of the code
    # identifies it anyway (compare with `python -m models.training.gpu_run --digest` at home).
    info["source_digest"] = source_digest()
    try:
        info["triton"] = metadata.version("triton")
    except metadata.PackageNotFoundError:
        info["triton"] = None
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        smi = _cmd(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 10)
        info["nvidia_smi"] = smi
        info["driver"] = smi.split(",")[1].strip() if smi and smi.count(",") >= 2 else None
    else:
        info["gpu"] = None
    return info


def process_start_time() -> float:
    """When this process started (Linux /proc), so that the budget counts Python's own start
    and the imports too; else now."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        started = time.time() - uptime + start_ticks / ticks
        return started if time.time() - 120 < started <= time.time() else time.time()
    except (OSError, ValueError, IndexError):
        return time.time()


def source_digest(root: Path = ROOT) -> str:
    """sha256 (first 16 hex digits) of the Python code under models/, kernels/ and app/."""
    import hashlib

    h = hashlib.sha256()
    for folder in ("models", "kernels", "app"):
        for p in sorted((root / folder).rglob("*.py")):
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class Clock:
    """Deadlines (absolute times) of every phase, from the budget."""

    def __init__(self, budget: float, mode: str, kernels_present: bool, start: float):
        r = RESERVES[mode]
        self.start = start
        self.end = self.start + budget
        self.pack = self.end - r["pack"]
        self.bench = self.pack - r["bench"]
        self.eval = self.bench - r["eval"]
        self.kernels = self.start + (min(r["kernels"], 0.17 * budget) if kernels_present else 0)
        # Smoke runs only: a worker that has not saved its first state may overrun by this
        # much (a CPU shared with other jobs can take 20 s to start four Pythons with torch).
        self.save_grace = r.get("save_grace", 0)
        if self.eval - self.kernels < 0.25 * budget:
            raise SystemExit(f"--budget {budget:g} s is too short: the phases after training need"
                             f" {r['eval'] + r['bench'] + r['pack']} s and training at least a quarter of it")

    def left(self, until: float) -> float:
        return max(0.0, until - time.time())

    def at(self, t: float | None = None) -> float:
        return round((t or time.time()) - self.start, 1)


# ---- phase 2: the Triton kernel's tests and benchmark -------------------------------------

def kernel_phase(root: Path, work: Path, until: float, device: str) -> dict:
    """Run the kernel's tests then its quick benchmark (if they exist), within `until`.
    -> {"backend": 'triton' or 'reference', outputs...}. The models use the kernel only if
    its tests passed on this machine."""
    result: dict = {"present": (root / KERNEL_TESTS).exists(), "backend": "reference"}
    if not result["present"]:
        result["reason"] = f"{KERNEL_TESTS} does not exist: the reference MTM is used"
        return result
    out_dir = work / "kernels"
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(root), KERNEL_ENV: "triton"}
    t0 = time.time()
    # Only the CUDA tests and the gradient checks: the whole file compiles about 40 kernel
    # variants on a GPU (minutes); the interpreter runs all of it in CI on every commit.
    tests = _run_logged([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", KERNEL_TESTS,
                         "-k", KERNEL_TEST_SELECTION], out_dir / "tests.txt", max(1.0, (until - t0) * 0.6), env, root)
    result["tests"] = tests
    passed = tests["rc"] == 0 and re.search(r"\b[1-9]\d* passed", tests["tail"]) is not None
    if tests["rc"] == 0 and not passed:
        result["reason"] = "the kernel tests were all skipped (no CUDA/Triton here?)"
    if passed and device == "cuda" and (root / KERNEL_TUNE).exists():
        result["tune"] = tune_tiles(root, out_dir, until, env)
    if (root / KERNEL_BENCH).exists() and time.time() < until - 2:
        bench = _run_logged([sys.executable, "-m", "kernels.bench", "--quick", "--json", str(out_dir / "bench.json")],
                            out_dir / "bench.txt", until - time.time(), env, root)
        result["bench"] = bench
        result["bench_json"] = read_json(out_dir / "bench.json")
    faster = kernel_faster(result.get("bench_json"))
    result["faster_than_reference"] = faster
    if passed and device == "cuda" and faster:
        result["backend"] = "triton"
    elif "reason" not in result:
        if tests["rc"] != 0:
            result["reason"] = ("the kernel tests timed out" if tests["rc"] == "timeout" else
                                "the kernel tests failed") + ": the reference is used"
        elif device != "cuda":
            result["reason"] = "no CUDA device: the reference is used"
        else:  # never train slower on an untimed kernel: these minutes are rare
            result["reason"] = ("the kernel is slower than the reference at the training shape" if faster is False
                                else "the benchmark did not time the training shape") + ": the reference is used"
    result["seconds"] = round(time.time() - t0, 1)
    return result


def tune_tiles(root: Path, out_dir: Path, until: float, env: dict, extra: tuple[str, ...] = ()) -> dict:
    """Once per GPU model: time the kernels' candidate tiles (python -m kernels.tune) into a
    copy of the repository's tuned-tiles file, which the benchmark, training and render
    bench of this run then read (TILES_ENV, inherited by every later child), and which
    gpu_return brings home. Skipped at once where the file already has this GPU model.
    `extra`: more arguments for kernels.tune (its CPU test: a tiny shape)."""
    import torch

    tiles = out_dir / "tuned_tiles.json"
    data = read_json(root / TUNED_TILES)  # checked: only a regular, bounded, valid file is copied
    if data is not None:
        from models.document.fileio import atomic_write_json

        atomic_write_json(tiles, data)
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
        known = data.get(gpu) if isinstance(data, dict) and gpu else None
        if isinstance(known, dict) and {"fwd", "bwd_data", "bwd_weight"} <= set(known):
            os.environ[TILES_ENV] = env[TILES_ENV] = str(tiles)
            return {"skipped": "this GPU model is tuned already"}  # without starting a process (~5 s)
    budget = min(TUNE_SECONDS, until - time.time() - BENCH_SECONDS)
    if budget < 10:
        return {"skipped": f"no time: {budget:.0f} s before the benchmark"}
    # An absolute deadline (the child's start-up counts), 8 s before the process is stopped:
    # time for the last candidate it starts.
    run = _run_logged([sys.executable, "-m", "kernels.tune", "--if-untuned", "--write-tuned", str(tiles),
                       "--json", str(out_dir / "tune.json"), "--deadline", f"{time.time() + budget - 8:.1f}", *extra],
                      out_dir / "tune.txt", budget, env, root)
    if tiles.exists():
        os.environ[TILES_ENV] = env[TILES_ENV] = str(tiles)
    return {**run, "report": read_json(out_dir / "tune.json")}


def kernel_faster(bench: dict | None) -> bool | None:
    """From `python -m kernels.bench --json`: is the kernel faster than the reference in
    forward+backward at a batched (training) shape, in bf16 (what training runs)? None where
    the benchmark did not measure that."""
    ratios = [row.get("ratios", {}).get("reference/ours") for row in (bench or {}).get("rows", [])
              if row.get("B", 1) > 1 and row.get("passes") == "fwd+bwd" and row.get("dtype") == "bfloat16"]
    ratios = [r for r in ratios if isinstance(r, (int, float))]
    return None if not ratios else min(ratios) > 1.0


def _run_logged(args: list[str], log_path: Path, timeout: float, env: dict, cwd: Path) -> dict:
    t0 = time.time()
    rc: int | str
    with open(log_path, "w") as f:
        try:
            rc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    text = log_path.read_text(errors="replace")
    return {"rc": rc, "seconds": round(time.time() - t0, 1), "tail": text[-1500:].strip()}


def kernel_env(backend: str) -> dict:
    env = {KERNEL_ENV: backend}
    if backend == "reference":
        env["STEERGAN_FORCE_REFERENCE"] = "1"  # the older switch of kernels/dispatch.py
    return env


# ---- phase 3 and 4: the training processes -------------------------------------------------

class Worker:
    def __init__(self, name: str, spec: dict, env: dict, work: Path):
        self.name, self.spec, self.work = name, spec, work
        work.mkdir(parents=True, exist_ok=True)
        spec_path = work / "spec.json"
        write_json(spec_path, spec)
        self.log = open(work / "worker.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "models.training.gpu_worker", str(spec_path)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.killed = False

    def status(self) -> dict:
        return read_json(self.work / "status.json") or {}

    def running(self) -> bool:
        return self.proc.poll() is None


def stop_all(workers: dict[str, Worker], grace: float = 5.0) -> None:
    """SIGTERM to every running worker at once (a training one saves its state on it), then
    SIGKILL to those still running after `grace` seconds."""
    running = [w for w in workers.values() if w.running()]
    for w in running:
        w.killed = True
        w.proc.terminate()
    deadline = time.time() + grace
    for w in running:
        try:
            w.proc.wait(max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
    for w in workers.values():
        w.log.close()


def last_logged(work: Path) -> str:
    """'N img, R img/s' from the last row of a worker's log.csv, or ''."""
    try:
        with open(work / "log.csv", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 400))
            row = f.read().decode(errors="replace").strip().splitlines()[-1].split(",")
        return f"{int(row[1])} img, {float(row[3]):g} img/s" if row[0].isdigit() else ""
    except (OSError, IndexError, ValueError):
        return ""


def worker_specs(names: list[str], configs: dict, clock: Clock, args, out: Path, work: Path, plan: dict,
                 device: str, run_entry: dict) -> list[tuple[str, dict, float]]:
    """(name, spec, launch time) for each model: all at once, or one after another."""
    from models.training.configs import RELAY_ON_GPU

    mode = "smoke" if args.smoke else "gpu"
    samples, fd_samples = EVAL_COUNTS[mode]
    cores = os.cpu_count() or 2
    concurrent = plan.get("mode", "concurrent") == "concurrent"
    train_start = time.time()
    window = clock.eval - train_start
    out_specs = []
    for i, name in enumerate(names):
        # All start at once (their imports and set-up overlap); one after another, each
        # waits for its equal slice of the window, so figures and figures-no-mtm stay comparable.
        launch = train_start
        if concurrent:
            start, until = train_start, clock.eval
        else:
            start = train_start + i * window / len(names)
            until = start + window / len(names)
        # No warm state (a run brought back with --no-warm): the shipped generator, D afresh.
        # The relay's model continues the relay's state (checkpoints/relay/), training only:
        # the relay's finish measures it at home.
        warm = args.warm / f"{name}.safetensors"
        warm = warm if warm.exists() else args.warm.parent / f"{name}.safetensors"
        relay_state = args.warm.parent / "relay" / f"{name}.safetensors"
        if name in RELAY_ON_GPU and relay_state.exists():  # else its shipped checkpoint, as above
            warm = relay_state
        spec = {"name": name, "config": configs[name].to_dict(), "device": device, "warm_in": str(warm),
                "state_out": str(out / f"{name}.safetensors"),
                "work": str(work / name), "lock": str(work / OUT_LOCK), "train_from": start, "train_until": until,
                "eval_samples": samples, "fd_samples": fd_samples, "sheet_cell": 32 if args.smoke else 128,
                "channels_last": bool(plan.get("channels_last", True)),
                "threads": max(1, cores // (len(names) if concurrent else 1)), "run_entry": run_entry,
                # a slow start on a busy CPU must still train a little: the smoke test checks that
                # images seen grow from run to run. Two steps are milliseconds on a GPU.
                "min_steps": 2, "train_only": name in RELAY_ON_GPU}
        out_specs.append((name, spec, launch))
    return out_specs


def train_phase(specs, env: dict, clock: Clock, workers: dict[str, Worker], progress_every: float,
                on_progress: Callable[[], None] | None = None) -> None:
    """Start the workers (into `workers`, so that an interrupted caller can stop them) and
    wait for them until the end of the eval window. `on_progress`: called with each progress
    line (gpu_run refreshes the summary in --out with it)."""
    pending = list(specs)
    last_progress = 0.0
    while True:
        now = time.time()
        while pending and pending[0][2] <= now:
            name, spec, _ = pending.pop(0)
            workers[name] = Worker(name, spec, env, Path(spec["work"]))
            log(f"started {name} (pid {workers[name].proc.pid}), training until +{clock.at(spec['train_until'])} s")
        if not pending and not any(w.running() for w in workers.values()):
            break
        if now >= clock.bench:  # the end of the eval window: stop those evaluating, but
            # not one that has yet to save its final state (a slow start on a busy machine),
            # unless packing is due
            saving = [n for n, w in workers.items() if w.running()
                      and w.status().get("phase", "init") in ("init", "waiting", "training")]
            if not saving or now >= clock.pack - 1 + clock.save_grace:
                break
        if now - last_progress >= progress_every:
            last_progress = now
            log(" | ".join(f"{name}: {w.status().get('phase', 'starting')} {last_logged(w.work)}"
                           for name, w in workers.items()))
            if on_progress is not None:
                on_progress()
        time.sleep(0.5)
    for name, w in workers.items():
        if w.running():
            log(f"{name} still running at its deadline ({w.status().get('phase')}): stopping it")
    stop_all(workers)


# ---- phase 5: measuring -------------------------------------------------------------------

def bench_phase(names: list[str], configs: dict, out: Path, work: Path, device: str, backend: str, clock: Clock,
                smoke: bool, plan: dict) -> dict:
    models = [{"name": n, "config": configs[n].to_dict(), "state": str(out / f"{n}.safetensors")} for n in names]
    base = {"device": device, "models": models, "work": str(work / "bench"), "threads": os.cpu_count() or 2,
            "seconds_each": 0.3 if smoke else 5.0, "renders": 10 if smoke else 200,
            "channels_last": bool(plan.get("channels_last", True))}
    runs = [("kernel" if backend == "triton" else "reference", backend, True)]
    if backend == "triton":
        runs.append(("reference", "reference", False))
    results = {}
    for i, (label, which, throughput) in enumerate(runs):
        share = (0.7 if len(runs) == 2 and i == 0 else 1.0) * clock.left(clock.pack)
        if share < 2:
            results[label] = {"skipped": "no time left"}
            continue
        spec = {**base, "throughput": throughput, "out": str(work / f"bench-{label}.json"),
                "until": time.time() + share}
        write_json(work / f"bench-{label}.spec.json", spec)
        env = {**child_env(), **kernel_env(which)}
        r = _run_logged([sys.executable, "-m", "models.training.gpu_bench", str(work / f"bench-{label}.spec.json")],
                        work / f"bench-{label}.txt", share, env, ROOT)
        results[label] = {**(read_json(work / f"bench-{label}.json") or {}), "rc": r["rc"], "seconds": r["seconds"]}
    return results


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ---- phase 6: packing -----------------------------------------------------------------------

def pack(work: Path, out: Path, names: list[str]) -> dict:
    """bundle.tar.gz in `out`: the small things first (summaries, metrics, logs), then the
    sheets, then training samples newest first, while the archive stays under 15 MiB."""
    wanted: list[tuple[Path, str]] = []
    for p in sorted(work.glob("*.json")) + sorted(work.glob("*.txt")) + sorted((work / "kernels").glob("*")):
        wanted.append((p, p.relative_to(work).as_posix()))
    for n in names:
        d = work / n
        for f in ("status.json", "metrics.json", "log.csv", "worker.log", "spec.json"):
            if (d / f).exists():
                wanted.append((d / f, f"{n}/{f}"))
    for n in names:
        wanted += [(p, f"{n}/sheets/{p.name}") for p in sorted((work / n / "sheets").glob("*.png"))]
    for n in names:
        samples = sorted((work / n / "samples").glob("*.png"))
        wanted += [(p, f"{n}/samples/{p.name}") for p in samples[::-1][:2]]
    buf = io.BytesIO()
    packed, left_out = [], []
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, arc in wanted:
            size = path.stat().st_size
            if arc.endswith("worker.log") and size > 256 * 1024:  # the tail is what matters
                data = path.read_bytes()[-256 * 1024:]
                info = tarfile.TarInfo(arc)
                info.size, info.mtime = len(data), int(time.time())
                if buf.tell() + len(data) > BUNDLE_MAX:
                    left_out.append(arc)
                    continue
                tar.addfile(info, io.BytesIO(data))
            elif buf.tell() + size > BUNDLE_MAX:
                left_out.append(arc)
                continue
            else:
                tar.add(path, arcname=arc)
            packed.append(arc)
    from models.document.fileio import atomic_write_bytes

    atomic_write_bytes(out / BUNDLE, buf.getvalue())
    return {"packed": len(packed), "left_out": left_out, "bytes": len(buf.getvalue())}


def check_out_limits(out: Path) -> list[str]:
    """What in `out` would not come back from the GPU machine (empty list: all fine)."""
    problems, files, total = [], [], 0
    for p in out.rglob("*"):
        if p.is_dir():
            continue
        folders = len(p.relative_to(out).parts) - 1
        if folders > LIMITS["depth"]:
            problems.append(f"{p}: {folders} folders deep, deeper than {LIMITS['depth']}")
        files.append(p)
        size = p.stat().st_size
        total += size
        if size > LIMITS["file_bytes"]:
            problems.append(f"{p.name}: {size / MiB:.1f} MiB, over {LIMITS['file_bytes'] // MiB} MiB")
    if len(files) > LIMITS["files"]:
        problems.append(f"{len(files)} files, over {LIMITS['files']}: {sorted(f.name for f in files)}")
    if total > LIMITS["total_bytes"]:
        problems.append(f"{total / MiB:.1f} MiB in all, over {LIMITS['total_bytes'] // MiB} MiB")
    return problems


# ---- the summary ---------------------------------------------------------------------------

def model_results(names: list[str], workers: dict, work: Path, out: Path) -> dict:
    res = {}
    for n in names:
        w = workers.get(n)
        st = (w.status() if w else read_json(work / n / "status.json")) or {}
        state = out / f"{n}.safetensors"
        res[n] = {"phase": st.get("phase", "not started"), "exit": None if w is None else w.proc.returncode,
                  "stopped_at_deadline": bool(w and w.killed), "warm_from": st.get("warm_from"),
                  "warm_error": st.get("warm_error"), "error": st.get("error"),
                  "images_before": st.get("images_before"), "images_after": st.get("images_after"),
                  "train_seconds": st.get("train_seconds_run"), "images_per_s_together": st.get("images_per_s"),
                  "images_per_s_together_steady": st.get("images_per_s_steady"),
                  "kernel_backend": st.get("kernel_backend"), "eval_seconds": st.get("eval_seconds"),
                  "sheets": st.get("sheets"), "metrics": read_json(work / n / "metrics.json"),
                  "state_bytes": state.stat().st_size if state.exists() else None}
    return res


def next_plan(models: dict, bench: dict, plan: dict) -> dict:
    """Concurrent training wins if each model gets more images together than in its 1/n
    slice alone (the mean of together / (alone / n) over the models is above 1)."""
    found = next((b.get("alone") for b in bench.values() if isinstance(b, dict) and b.get("alone")), None)
    alone: dict[str, Any] = found or {}
    n = len(models)
    gains = []
    for name, m in models.items():
        together = m.get("images_per_s_together_steady") or m.get("images_per_s_together")
        a = (alone.get(name) or {}).get("images_per_s")
        if together and a:
            gains.append(together / (a / n))
    new = dict(plan)
    if gains and plan.get("mode", "concurrent") == "concurrent":
        gain = sum(gains) / len(gains)
        new["concurrency_gain"] = round(gain, 2)
        new["mode"] = "concurrent" if gain >= 1.0 else "sequential"
    other = next((b.get("alone_other_format") for b in bench.values() if isinstance(b, dict)
                  and b.get("alone_other_format")), None)
    if other and (alone.get(other["name"]) or {}).get("images_per_s"):
        ratio = other["images_per_s"] / alone[other["name"]]["images_per_s"]
        new["other_format_speed"] = round(ratio, 2)
        if ratio > 1.05:  # clearly faster in the other memory format: switch
            new["channels_last"] = other["channels_last"]
    return new


def print_summary(summary: dict) -> None:
    m = summary.get("machine", {})
    lines = ["", "=" * 78,
             f"GPU run {summary['started']}  {m.get('gpu') or m.get('device')}  torch {m.get('torch')}"
             f"  triton {m.get('triton')}  commit {(m.get('commit') or '?')[:10]}",
             f"kernel: {summary['kernels'].get('backend')} ({summary['kernels'].get('reason', 'tests passed')})",
             f"mode: {summary['plan'].get('mode', 'concurrent')}, channels_last={summary['plan'].get('channels_last')}",
             f"{'model':<16}{'phase':<12}{'images':>18}{'img/s tog.':>11}{'alone':>8}{'p50/p95 ms':>14}"]
    bench = summary.get("bench", {})
    first: dict[str, Any] = next(iter(bench.values()), {}) if bench else {}
    for name, r in summary["models"].items():
        alone = ((first.get("alone") or {}).get(name) or {}).get("images_per_s", "")
        lat = (first.get("render") or {}).get(name) or {}
        imgs = f"{r.get('images_before') or 0}->{r.get('images_after') or '?'}"
        lines.append(f"{name:<16}{r['phase']:<12}{imgs:>18}{str(r.get('images_per_s_together') or ''):>11}"
                     f"{str(alone):>8}{(str(lat.get('p50_ms', '')) + '/' + str(lat.get('p95_ms', ''))):>14}")
        met = r.get("metrics") or {}
        keys = [k for k in ("realism_accuracy", "realism_accuracy_offsets_off", "co_move_tracked",
                                 "block_locality_levels", "domain_fd", "co_move_ratio") if met.get(k) is not None]
        if keys:
            lines.append("    " + "  ".join(f"{k}={met[k]:.3g}" for k in keys))
        if r.get("error") or r.get("warm_error"):
            lines.append(f"    ! {r.get('error') or r.get('warm_error')}"[:160])
    ref = bench.get("reference", {}) if len(bench) > 1 else {}
    if ref.get("render"):
        lines.append("reference render p50/p95 ms: " + ", ".join(
            f"{k} {v['p50_ms']}/{v['p95_ms']}" for k, v in ref["render"].items()))
    lines.append(f"next plan: {summary.get('next_plan')}")
    lines.append(f"phases (s from start): {summary['phases']}")
    limits = summary["limit_problems"] or "ok"
    lines.append(f"out: {summary['out_files']}  limits: {limits}")
    lines.append("=" * 78)
    print("\n".join(lines), flush=True)


# ---- the command ---------------------------------------------------------------------------

def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python3 -m models.training.gpu_run", description=__doc__.splitlines()[0])
    p.add_argument("--digest", action="store_true", help="print the code digest a run records, and exit")
    p.add_argument("--budget", type=float, help="seconds of wall time for the whole run (required)")
    p.add_argument("--out", type=Path, help="the folder whose files come back (created; required)")
    p.add_argument("--smoke", action="store_true", help="tiny models on the CPU: the same path, in about a minute")
    p.add_argument("--warm", type=Path, default=WARM_DIR, help=f"warm-start states (default {WARM_DIR})")
    p.add_argument("--work", type=Path, help="scratch folder (default runs/gpu-run/STAMP)")
    p.add_argument("--models", nargs="+", help="a subset of the models (default all)")
    args = p.parse_args(argv)
    if not args.digest and (args.budget is None or args.out is None):
        p.error("--budget and --out are required")
    if args.budget is not None and not args.budget > 0:
        p.error(f"--budget must be a positive number of seconds, got {args.budget:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    t_start = process_start_time()
    args = parse(argv)
    if args.digest:
        print(source_digest())
        return 0
    import torch

    from models.training.configs import GPU_CONFIGS, GPU_RUN_MODELS, SMOKE_CONFIGS

    configs = SMOKE_CONFIGS if args.smoke else GPU_CONFIGS
    names = args.models or list(GPU_RUN_MODELS)
    unknown = [n for n in names if n not in configs]
    if unknown:
        print(f"gpu_run: error: unknown models {unknown}; known: {list(configs)}", file=sys.stderr)
        return 2
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_run: error: no CUDA device; use --smoke to run the tiny models on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.smoke else "cuda"
    mode = "smoke" if args.smoke else "gpu"
    clock = Clock(args.budget, mode, (ROOT / KERNEL_TESTS).exists(), t_start)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = (args.work or ROOT / "runs" / "gpu-run" / stamp).resolve()
    work.mkdir(parents=True, exist_ok=True)
    plan = read_json(args.warm / PLAN_FILE) or {}
    plan.setdefault("mode", "concurrent")
    plan.setdefault("channels_last", True)
    summary: dict = {"format": "steergan-gpu-run", "version": 1, "started": stamp, "smoke": args.smoke,
                     "budget_s": args.budget, "models": {}, "kernels": {}, "bench": {}, "plan": plan,
                     "phases": {}, "out_files": {}, "limit_problems": []}

    def on_signal(signum, frame):
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers: dict[str, Worker] = {}
    try:
        summary["machine"] = machine(device)
        summary["machine"]["interrupted"] = None
        log(f"{summary['machine'].get('gpu') or device}, budget {args.budget:g} s, out {out}, work {work}")
        write_json(out / SUMMARY, summary)
        summary["kernels"] = kernel_phase(ROOT, work, clock.kernels, device)
        summary["phases"]["kernels_done"] = clock.at()
        backend = summary["kernels"]["backend"]
        log(f"MTM backend for training: {backend} ({summary['kernels'].get('reason', 'tests passed')})")
        run_entry = {"date": stamp, "device": summary["machine"].get("gpu") or device, "backend": backend,
                     "mode": plan["mode"], "smoke": args.smoke}
        specs = worker_specs(names, configs, clock, args, out, work, plan, device, run_entry)
        env = {**child_env(), **kernel_env(backend)}

        def save_summary() -> None:
            # The summary in --out names the run's models from before their first state: a run
            # killed before its end (SIGKILL, a device limit cut short) returns states that
            # gpu_return takes, which it refuses for a summary that names no models. Under the
            # workers' lock (fileio.locked): one temporary file in --out at a time.
            summary["models"] = model_results(names, workers, work, out)
            with locked(work / OUT_LOCK):
                write_json(out / SUMMARY, summary)

        save_summary()
        train_phase(specs, env, clock, workers, 2.0 if args.smoke else 30.0, save_summary)
        summary["phases"]["train_eval_done"] = clock.at()
        save_summary()
        summary["bench"] = bench_phase(names, configs, out, work, device, backend, clock, args.smoke, plan)
        summary["phases"]["bench_done"] = clock.at()
    except Stop as exc:
        summary["machine"]["interrupted"] = str(exc)
        log(f"interrupted by {exc}: packing what there is")
    finally:
        stop_all(workers)
    summary["models"] = model_results(names, workers, work, out)
    summary["next_plan"] = next_plan(summary["models"], summary["bench"], plan)
    write_json(work / "summary.json", summary)
    for stray in out.glob(".*.part"):  # a write cut short by a kill: never a result
        stray.unlink(missing_ok=True)
    summary["pack"] = pack(work, out, names)
    summary["phases"]["packed"] = clock.at()
    summary["out_files"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    summary["out_files"][SUMMARY] = 0  # itself, sized below
    summary["limit_problems"] = check_out_limits(out)
    summary["phases"]["end"] = clock.at()
    write_json(out / SUMMARY, summary)
    summary["out_files"][SUMMARY] = (out / SUMMARY).stat().st_size
    print_summary(summary)
    failed = [n for n, r in summary["models"].items() if r["phase"] != "done"]
    return 1 if failed or summary["limit_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
