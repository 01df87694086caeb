"""The relay (issue 24): the CPU that is idle while code is written trains the bundled models,
continuing from compact states kept in the repository, and ships a checkpoint only when it
measures no worse than the one it replaces.

    steergan relay start --until 13:40     # background, nice, saves every few minutes
    steergan relay status
    steergan relay finish                  # stop, measure, ship if no worse, log a README row

Files: checkpoints/relay/plan.json (which model trains, and each model's targets),
checkpoints/relay/MODEL.safetensors (the warm state: G, G_ema, D in fp16, no optimiser
moments: Adam's rebuild in ~100 steps, see gpu_worker.LR_WARMUP_STEPS), and the untracked
runs/relay/ (pid, log, the running state). What was shipped is never touched by a run:
only `finish` replaces it, after the gate.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from models.document.fileio import FileProblem, atomic_write_json, read_regular
from models.io.safetensors_io import SafetensorsProblem, parse_json

ROOT = Path(__file__).resolve().parents[2]
PLAN_NAME = "plan.json"


def relay_dir() -> Path:
    """The states and the plan (tracked). The STEERGAN_RELAY_* variables move the three
    folders (tests; the background process inherits them)."""
    return Path(os.environ.get("STEERGAN_RELAY_DIR", ROOT / "checkpoints" / "relay"))


def run_dir() -> Path:
    """The running relay's pid record, log and state (untracked)."""
    return Path(os.environ.get("STEERGAN_RELAY_RUNS", ROOT / "runs" / "relay"))


def ship_dir() -> Path:
    """Where the shipped checkpoints are, and the README's sample sheets (ship_dir/../assets)."""
    return Path(os.environ.get("STEERGAN_RELAY_SHIP", ROOT / "checkpoints"))


def save_every_minutes() -> float:
    try:
        return max(0.01, float(os.environ.get("STEERGAN_RELAY_SAVE_MINUTES", SAVE_EVERY_MINUTES)))
    except ValueError:
        return SAVE_EVERY_MINUTES
MAX_PLAN_BYTES = 64 * 1024
MAX_STATE_BYTES = 6 * 2**20  # issue 24: a relay state travels with the tree
SAVE_EVERY_MINUTES = 3.0
# What finish measures (the same settings for the run's checkpoint and the shipped one).
EVAL_SAMPLES, EVAL_FD_SAMPLES, EVAL_REALISM_SAMPLES = 128, 256, 256
# The realism gate compares means of this many classifier tests (evaluate's realism_seeds):
# one test of the shipped default scored 0.742 with seed 0 and 0.77-0.82 with seeds 1-4
# (session 17), so a single test could pass or refuse a run by chance. About 30 s a test at
# 256 a side (rooms-cpu, one thread beside the relay).
EVAL_REALISM_SEEDS = 4
# The gate: the run ships only if each is no worse than the shipped model's, measured here,
# within the noise of one measurement (two evaluations of one checkpoint with other seeds
# differ by about this much: README, "The relay"; realism: the mean of EVAL_REALISM_SEEDS
# tests: one test's spread of 0.05-0.07 over four seeds puts the difference of two such
# means at about +-0.02, an estimate, not measured checkpoint against checkpoint).
GATE = {"realism_accuracy": ("lower", 0.02), "domain_fd": ("lower_ratio", 1.15),
        "co_move_tracked": ("higher", 0.05)}
# A ratio gate also passes when the new value is at or below the floor measured beside it
# (for the FD: two samples of real rooms, as many as each side has, `domain_fd_real_floor`):
# below it the measure cannot tell the model from real data, so a smaller old value is noise
# (session 12: 0.0248 against 0.0107 with a floor of 0.0277 was refused on FD alone). A
# finer measurement may still tell them apart: the model shipped then scored 0.036 against
# its predecessor's 0.020 with 512 images a side (README, the bundled default).
GATE_FLOORS = {"domain_fd": "domain_fd_real_floor"}


class RelayError(Exception):
    """One line for the user: what is wrong and with which file."""


# ---- the plan -------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanEntry:
    name: str  # the shipped checkpoint checkpoints/NAME.safetensors
    config: str  # the training config it continues with
    targets: dict[str, float]  # metric -> bound (see meets_targets)


def read_plan(path: Path | None = None) -> tuple[list[PlanEntry], dict[str, dict]]:
    """-> (the models in priority order, the last measured metrics per model)."""
    path = path or relay_dir() / PLAN_NAME
    try:
        data = parse_json(read_regular(path, MAX_PLAN_BYTES), "its JSON")
    except FileProblem as exc:
        raise RelayError(f"{path}: {exc.problem}") from None
    except SafetensorsProblem as exc:
        raise RelayError(f"{path}: not a relay plan: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list) or not data["models"]:
        raise RelayError(f"{path}: a relay plan is an object with a non-empty 'models' list")
    entries = []
    for i, m in enumerate(data["models"]):
        ok = (isinstance(m, dict) and isinstance(m.get("name"), str) and _safe_name(m["name"])
              and isinstance(m.get("config"), str) and isinstance(m.get("targets", {}), dict)
              and all(isinstance(k, str) and _finite(v) for k, v in m.get("targets", {}).items()))
        if not ok:
            raise RelayError(f"{path}: models[{i}] must have a plain 'name', a 'config' and numeric 'targets'")
        entries.append(PlanEntry(m["name"], m["config"], dict(m.get("targets", {}))))
    measured = data.get("measured", {})
    if not isinstance(measured, dict) or not all(isinstance(v, dict) for v in measured.values()):
        raise RelayError(f"{path}: 'measured' must map model names to metrics")
    return entries, measured


def _safe_name(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_" for c in name) and not name.startswith("-")


def _finite(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e12 and v == v


def target_gaps(metrics: dict, targets: dict[str, float]) -> dict[str, float]:
    """How far each target is from met (0 = met; missing metrics count as 1). Targets named
    `X_max` bound X from above, `X_min` from below; `co_move_tracked_fraction_min` bounds
    co_move_tracked / co_move_tracked_ceiling."""
    gaps = {}
    for key, bound in targets.items():
        name, _, side = key.rpartition("_")
        value = _target_value(metrics, name)
        if not _finite(value):
            gaps[key] = 1.0
        elif side == "max":
            gaps[key] = max(0.0, (value - bound) / max(abs(bound), 1e-6))
        else:
            gaps[key] = max(0.0, (bound - value) / max(abs(bound), 1e-6))
    return gaps


def _target_value(metrics: dict, name: str) -> float:
    """The value a target of that name bounds (nan where it was not measured)."""
    if name == "co_move_tracked_fraction":
        t, c = metrics.get("co_move_tracked"), metrics.get("co_move_tracked_ceiling")
        return t / c if _finite(t) and _finite(c) and c > 0 else float("nan")
    value = metrics.get(name)
    return float(value) if _finite(value) else float("nan")


def choose_model(entries: list[PlanEntry], measured: dict[str, dict]) -> PlanEntry:
    """The first model (the default) until it meets its targets, then the one furthest from
    its own (the largest summed gap)."""
    first = entries[0]
    if sum(target_gaps(measured.get(first.name, {}), first.targets).values()) > 0:
        return first
    return max(entries, key=lambda e: sum(target_gaps(measured.get(e.name, {}), e.targets).values()))


# ---- the gate ------------------------------------------------------------------------------

def gate(new: dict, old: dict, targets: dict[str, float] | None = None) -> tuple[bool, list[str]]:
    """Is `new` no worse than `old` on every GATE metric, and does it meet every one of its
    plan's `targets` that `old` meets? -> (verdict, the reasons it is not). The second rule
    keeps what a shipped model has won: session 22's rooms-cpu went through the GATE
    metrics while its co-move ratio fell below issue 7's 0.8, which its predecessor met."""
    reasons = []
    for key, (how, tol) in GATE.items():
        a, b = new.get(key), old.get(key)
        if not _finite(b):
            continue  # the shipped model lacks it (e.g. no objects): nothing to hold against
        if not _finite(a):
            reasons.append(f"{key} not measured")
        elif how == "lower" and a > b + tol:
            reasons.append(f"{key} {a:.3f} > {b:.3f} + {tol}")
        elif how == "lower_ratio" and a > b * tol:
            floor = new.get(GATE_FLOORS.get(key, ""))
            if not _finite(floor):
                reasons.append(f"{key} {a:.4f} > {tol} x {b:.4f}")
            elif a > floor:
                reasons.append(f"{key} {a:.4f} > {tol} x {b:.4f} and > the real floor {floor:.4f}")
        elif how == "higher" and a < b - tol:
            reasons.append(f"{key} {a:.3f} < {b:.3f} - {tol}")
    old_gaps, new_gaps = target_gaps(old, targets or {}), target_gaps(new, targets or {})
    for key, bound in (targets or {}).items():
        if old_gaps[key] == 0 and new_gaps[key] > 0:
            name = key.rpartition("_")[0]
            reasons.append(f"{name} {_target_value(new, name):.3f} misses the target {key} {bound:g}, which the"
                           f" shipped model meets ({_target_value(old, name):.3f})")
    return not reasons, reasons


# ---- the background run ---------------------------------------------------------------------

FINISHING_NAME = "finishing.json"  # while `relay finish` measures: its pid (start waits)


def _pid_file(runs: Path | None = None) -> Path:
    return (runs or run_dir()) / "relay.json"


def _alive(pid: int) -> bool:
    """Is `pid` a live process (a zombie is not: reaped here if it is our own child)?"""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: started by another `steergan relay start`
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError, OverflowError):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _record(runs: Path | None = None) -> dict | None:
    """The record of the last relay started (pid, model, start, deadline), alive or not."""
    try:
        rec = parse_json(read_regular(_pid_file(runs), MAX_PLAN_BYTES), "relay record")
    except (FileProblem, SafetensorsProblem):
        return None
    return rec if isinstance(rec, dict) else None


def finishing_pid(runs: Path | None = None) -> int | None:
    """The pid of a `relay finish` still measuring (its marker, its process alive), or None.
    `runs`: the relay's runs folder (default run_dir())."""
    try:
        rec = parse_json(read_regular((runs or run_dir()) / FINISHING_NAME, MAX_PLAN_BYTES), "finishing marker")
    except (FileProblem, SafetensorsProblem):
        return None
    pid = rec.get("pid") if isinstance(rec, dict) else None
    return pid if _live_pid(pid) else None


def _live_pid(pid: Any) -> bool:
    """A process id a record may hold (a whole number above 1: 0 or below would name a process
    group, kill(-1, 0) reaches every process) whose process is alive."""
    return not isinstance(pid, bool) and isinstance(pid, int) and 1 < pid < 2**31 and _alive(pid)


def running(runs: Path | None = None) -> dict | None:
    """The running relay's record, or None (a stale record of a dead process counts as none).
    `runs`: the relay's runs folder (default run_dir())."""
    rec = _record(runs)
    if not isinstance(rec, dict) or not _live_pid(rec.get("pid")):
        return None
    try:  # a reused PID is not our relay: its command line must name this module
        cmd = Path(f"/proc/{rec['pid']}/cmdline").read_bytes()
        if b"models.training.relay" not in cmd:
            return None
    except OSError:
        pass
    return rec


def start(until: float, model: str | None = None, from_run: Path | None = None, nice: int = 10,
          threads: int = 2) -> dict:
    """Start the relay in the background; returns its record (pid, model, deadline, log)."""
    if running():
        raise RelayError(f"a relay is already running (see {_pid_file()}); `steergan relay finish` stops it")
    finishing = finishing_pid()
    if finishing is not None:
        raise RelayError(f"`steergan relay finish` (pid {finishing}) is measuring the last run; start again when"
                         " it is done")
    entries, measured = read_plan()
    entry = next((e for e in entries if e.name == model), None) if model else choose_model(entries, measured)
    if entry is None:
        raise RelayError(f"{model!r} is not in the relay plan ({', '.join(e.name for e in entries)})")
    if until <= time.time() + 60:
        raise RelayError("the deadline must be at least a minute from now")
    if not 1 <= threads <= 256:
        raise RelayError(f"--threads must be between 1 and 256, got {threads}")
    work = run_dir() / entry.name
    if from_run is not None:
        if not from_run.exists():
            raise RelayError(f"{from_run}: no such run folder or state file")
        # Checked here, not first in the background run (its error would reach only the log):
        # a warm state or a full training state, as _run reads them.
        from models.training.state import saved_kind

        kinds = {saved_kind(from_run / n) for n in ("state.safetensors", "train_state.safetensors")} \
            if from_run.is_dir() else {saved_kind(from_run)}
        if not kinds & {"warm", "train"}:
            raise RelayError(f"{from_run}: holds no warm state or training state to continue (state.safetensors"
                             " or train_state.safetensors of a `steergan train` run)")
        if (work / "state.safetensors").exists():
            raise RelayError(f"{work / 'state.safetensors'}: an unfinished relay run; `steergan relay finish` it, or"
                             " move it away, before continuing another run with --from")
    work.mkdir(parents=True, exist_ok=True)
    log_path = run_dir() / "relay.log"
    args = [sys.executable, "-m", "models.training.relay", "_run", entry.name, entry.config, str(until)]
    if from_run is not None:
        args += ["--from", str(from_run)]
    # OpenMP's default (spinning) wait policy: on an idle machine 2 threads made 17-18 img/s
    # with it and 10.5 with PASSIVE; on a busy one the relay drops to 1 thread (_follow_load),
    # where the policy does not matter.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, preexec_fn=lambda: os.nice(nice))
    rec = {"pid": proc.pid, "model": entry.name, "config": entry.config, "until": until, "started": time.time(),
           "log": str(log_path), "threads": threads}
    atomic_write_json(_pid_file(), rec)
    return rec


def _run(name: str, config: str, until: float, from_run: str | None) -> int:
    """The background worker: continue `name` until the deadline, saving every few minutes
    and at SIGTERM/SIGINT (a kill -9 loses the minutes since the last save)."""
    import torch

    from models.training.configs import training_config
    from models.training.gpu_worker import WarmTrainer
    from models.training.state import TrainStateError, saved_kind

    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    cfg = training_config(config)
    cfg = type(cfg).from_dict({**cfg.to_dict(), "name": name, "save_every_minutes": save_every_minutes()})
    work = run_dir() / name
    state_out = work / "state.safetensors"
    trainer = WarmTrainer(cfg, work, "cpu", state_out=state_out)
    signal.signal(signal.SIGTERM, trainer.on_stop_signal)  # finish's SIGTERM: the step in progress completes
    _follow_load(trainer, threads)
    try:
        if from_run:  # named on purpose: it wins over the relay's own state, which finish replaces
            source = Path(from_run)
            warm = source / "state.safetensors" if source.is_dir() else source
            if warm.is_file() and saved_kind(warm) == "warm":  # a `steergan train --warm-start` run
                trainer.warm_start(warm)
            else:  # a comparison run's full state (issue 23): the winner continues
                trainer.load(from_run)
                trainer.images_at_start = trainer.images_seen
            print(f"continuing the comparison run {from_run}", flush=True)
        elif state_out.exists():  # an earlier relay of this session that was not finished yet
            trainer.warm_start(state_out)
            print(f"continuing the unfinished run in {state_out}", flush=True)
        elif (relay_dir() / f"{name}.safetensors").exists():
            trainer.warm_start(relay_dir() / f"{name}.safetensors")
        elif saved_kind(ship_dir() / f"{name}.safetensors") == "checkpoint":  # shipped before the relay
            trainer.warm_start(ship_dir() / f"{name}.safetensors")
            print(f"no relay state: continuing the shipped {name} ({trainer.images_seen} images) with a new D",
                  flush=True)
        else:
            print("no relay state: training from scratch", flush=True)
    except TrainStateError as exc:  # e.g. the config's recipe changed since the state was saved
        print(f"error: {exc} (nothing was changed; a state of another recipe cannot continue: move it"
              " away to start from scratch or from a comparison run with --from)", flush=True)
        trainer.close()
        return 3
    print(f"relay: {name} ({config}) from step {trainer.step}, {trainer.images_seen} images, until"
          f" {time.strftime('%H:%M', time.localtime(until))}", flush=True)
    try:
        trainer.run(minutes=max(0.0, until - time.time()) / 60)
    except TrainStateError as exc:
        print(f"error: {exc}", flush=True)
        return 3
    finally:
        trainer.close()
    print(f"relay stopped at step {trainer.step}, {trainer.images_seen} images", flush=True)
    return 0


LOAD_RECHECK_SECONDS = 30.0


def _follow_load(trainer, threads: int) -> None:
    """Before each step, now and then: one torch thread while the machine is busier than its
    cores (a test run, a build), `threads` again when it is not (models/tools/cpu_threads.py)."""
    import torch

    from models.tools.cpu_threads import available_cpus, load_average, threads_for_load

    step = trainer.train_step
    next_check = [0.0]

    def train_step():
        now = time.monotonic()
        if now >= next_check[0]:
            next_check[0] = now + LOAD_RECHECK_SECONDS
            want = threads_for_load(available_cpus(), load_average(), idle_threads=threads)
            if want != torch.get_num_threads():
                torch.set_num_threads(want)
                print(f"relay: {want} torch thread(s) (load average {load_average() or 0:.1f})", flush=True)
        return step()

    trainer.train_step = train_step


def stop(timeout: float = 120.0) -> dict | None:
    """SIGTERM the running relay and wait until it has saved and exited."""
    rec = running()
    if rec is None:
        return None
    os.kill(rec["pid"], signal.SIGTERM)
    end = time.time() + timeout
    while time.time() < end:
        if not _alive(rec["pid"]):
            break
        time.sleep(0.5)
    else:
        raise RelayError(f"the relay (pid {rec['pid']}) did not stop within {timeout:.0f} s")
    return rec


# ---- finish: measure, gate, ship, log ---------------------------------------------------------

RELAY_LOG_START = "<!-- relay-log:start -->"
RELAY_LOG_END = "<!-- relay-log:end -->"


def checkpoint_from_warm_state(name: str, state: Path | Sequence[Path], out: Path):
    """The run's EMA generator from its warm state, as a checkpoint (a relay's candidate, or a
    comparison run that started from a relay state: `steergan train --warm-start`). Given
    several states of one run, the uniform average of their EMA generators (Polyak averaging
    over the saves: a longer EMA, measured after the fact); its info is the last state's."""
    import torch

    from models.config import architecture
    from models.io.checkpoint import save_checkpoint
    from models.nets.generator import Generator
    from models.training.state import TrainStateError, load_warm_state

    states = [Path(state)] if isinstance(state, (str, Path)) else [Path(s) for s in state]
    if not states:
        raise RelayError(f"{out}: no warm state to make a checkpoint of")
    total: dict[str, torch.Tensor] = {}
    info: dict = {}
    arch_name = None
    for path in states:
        try:
            modules, info = load_warm_state(path)
            ema = modules["G_ema"]
        except (TrainStateError, KeyError) as exc:
            raise RelayError(f"{path}: not a usable relay state ({str(exc)[:200]})") from None
        this_arch = (info.get("config") or {}).get("architecture", "")
        if arch_name is not None and (this_arch != arch_name or set(ema) != set(total)):
            raise RelayError(f"{path}: architecture {str(this_arch)[:40]!r} cannot be averaged with"
                             f" {states[0]}'s {str(arch_name)[:40]!r}")
        arch_name = this_arch
        for key, value in ema.items():  # integer buffers (none today) are taken from the last state
            total[key] = total[key] + value if key in total and value.is_floating_point() else value.clone()
    mean = {k: v / len(states) if v.is_floating_point() else v for k, v in total.items()}
    cfg = info.get("config") or {}
    try:
        G = Generator(architecture(cfg.get("architecture", ""))).eval().requires_grad_(False)
        G.load_state_dict(mean)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise RelayError(f"{states[-1]}: not a usable relay state ({str(exc)[:200]})") from None
    minutes = round(float(info.get("train_seconds", 0.0)) / 60, 2)
    trained_on = {"dataset": cfg.get("dataset"), "images": int(info.get("images_seen", 0)),
                  "steps": int(info.get("step", 0)), "minutes": minutes, "device": "cpu",
                  "training_config": cfg, "relay": True}
    if len(states) > 1:
        trained_on["averaged_states"] = len(states)
    save_checkpoint(out, G, {"name": name, "architecture": cfg.get("architecture"), "trained_on": trained_on,
                             "metrics": {}})
    torch.manual_seed(0)
    return out, info


def measure(checkpoint: Path, log=print, samples: tuple[int, int, int] | None = None) -> dict:
    """Every metric of a checkpoint, measured here with the relay's fixed settings and seed."""
    from models.io.checkpoint import load_checkpoint
    from models.metrics.evaluate import evaluate
    from models.metrics.probe import DEFAULT_PROBE, load_probe

    G, _ = load_checkpoint(checkpoint)
    probe, _ = load_probe(DEFAULT_PROBE)
    n, fd, realism = samples or (EVAL_SAMPLES, EVAL_FD_SAMPLES, EVAL_REALISM_SAMPLES)
    return evaluate(G, probe, samples=n, fd_samples=fd, realism_samples=realism, log=log,
                    realism_seeds=EVAL_REALISM_SEEDS)


def _row(name: str, info: dict, minutes_run: float, new: dict, verdict: str) -> str:
    from models.training.gpu_return import LOG_METRICS

    parts = [f"{label} {new[k]:.3g}" for k, label in LOG_METRICS if _finite(new.get(k))]
    return (f"| {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} | {name} | {minutes_run:.0f} |"
            f" {int(info.get('images_seen', 0)):,} | {', '.join(parts) or 'not measured'} | {verdict} |")


def finish(readme: Path | None = None, log=print, sheets: bool = True,
           samples: tuple[int, int, int] | None = None, override_gate: bool = False) -> dict:
    """Stop the relay, measure its result against the shipped model, ship it if no worse, keep
    its state for the next relay, and append a row to the README's relay log.
    `override_gate`: ship it even where the gate refuses -- a decision taken by hand on other
    evidence (e.g. a new architecture that trades one metric for the controls), recorded in
    the row with the gate's reasons; the shipped model's metrics become the next gate's bar.

    While it measures (minutes), `start` is refused (the finishing marker): a relay started
    then would continue the state being measured and lose its saves when this one ends."""
    from models.training.gpu_return import ReturnError, _readme_text, readme_with_row

    readme = readme or ROOT / "README.md"
    rec = stop() or _record()  # a relay that stopped at its deadline left its record
    stopped_at = time.time()
    done = [p.parent for p in run_dir().glob("*/state.safetensors")]
    if not done:
        raise RelayError(f"no relay run to finish in {run_dir()}")
    try:  # before minutes of measuring, not after them
        readme_with_row(readme, _readme_text(readme), "", RELAY_LOG_START, RELAY_LOG_END)
    except ReturnError as exc:
        raise RelayError(str(exc)) from None
    marker = run_dir() / FINISHING_NAME
    atomic_write_json(marker, {"pid": os.getpid(), "started": stopped_at})
    try:
        return _finish_runs(done, readme, rec, stopped_at, log, sheets, samples, override_gate)
    finally:
        marker.unlink(missing_ok=True)


def _finish_runs(done: list[Path], readme: Path, rec: dict | None, stopped_at: float, log, sheets: bool,
                 samples: tuple[int, int, int] | None, override_gate: bool) -> dict:
    import shutil

    from models.document.fileio import atomic_write_bytes, file_sha256
    from models.io.checkpoint import store_metrics
    from models.training.gpu_return import append_log_row

    entries, _ = read_plan()
    names = {e.name for e in entries}
    results, measured_now = {}, {}
    for work in done:
        name = work.name
        if name not in names:
            continue
        state = work / "state.safetensors"
        if state.stat().st_size > MAX_STATE_BYTES:
            raise RelayError(f"{state}: {state.stat().st_size / 2**20:.1f} MiB, more than the {MAX_STATE_BYTES >> 20}"
                             " MiB a relay state may be")
        # Read once: the state measured is the state kept, whatever happens to the file meanwhile.
        state_bytes = state.read_bytes()
        measured_state = work / "measured-state.safetensors"
        atomic_write_bytes(measured_state, state_bytes)
        cand, info = checkpoint_from_warm_state(name, measured_state, work / f"{name}.safetensors")
        shipped = ship_dir() / f"{name}.safetensors"
        log(f"measuring the run's {name} ({int(info.get('images_seen', 0)):,} images)")
        new = measure(cand, log, samples)
        old = measure(shipped, log, samples) if shipped.exists() else {}
        ok, reasons = gate(new, old, next(e.targets for e in entries if e.name == name))
        overridden = override_gate and not ok
        if ok or overridden:
            store_metrics(cand, new)
            atomic_write_bytes(shipped, cand.read_bytes())
            if sheets:
                from models.tools.showcase import main as showcase

                showcase([str(shipped), "--out", str(ship_dir().parent / "assets" / name), "--cell", "128"])
        previous_state = relay_dir() / f"{name}.safetensors"
        before = int(state_images(previous_state))
        relay_dir().mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(previous_state, state_bytes)  # the next relay continues from here
        # The run is done as soon as its state is kept: a crash after this point does not
        # measure and ship it a second time.
        shutil.rmtree(work / "samples", ignore_errors=True)
        state.unlink()
        measured_state.unlink()
        measured_now[name] = new if ok or overridden else (old or new)
        # Training minutes: from the start to the stop (or the deadline), not the measuring.
        minutes_run = 0.0
        if rec and _finite(rec.get("started")):
            end = min(stopped_at, rec["until"]) if _finite(rec.get("until")) else stopped_at
            minutes_run = max(0.0, end - rec["started"]) / 60
        verdict = ("shipped" if ok else "shipped by hand over the gate: " + "; ".join(reasons) if overridden
                   else "kept the shipped one: " + "; ".join(reasons))
        row = _row(name, info, minutes_run, new, verdict)
        append_log_row(readme, row, RELAY_LOG_START, RELAY_LOG_END)
        results[name] = {"shipped": ok or overridden, "overridden": overridden, "reasons": reasons,
                         "new": new, "old": old, "row": row,
                         "images_before": before, "images_after": int(info.get("images_seen", 0)),
                         "state_sha256": file_sha256(previous_state)}
        log(row)
    # The plan as it is now (an edit made while this measured stays), with these measurements.
    entries_now, measured = read_plan()
    measured.update(measured_now)
    _write_plan(entries_now, measured)
    return results


def state_images(path: Path) -> int:
    """Images a warm state has seen; 0 for a missing or unreadable one (it is replaced)."""
    from models.training.state import TrainStateError, load_warm_state

    try:
        return int(load_warm_state(path)[1].get("images_seen", 0)) if path.exists() else 0
    except (TrainStateError, ValueError, TypeError):
        return 0


def _write_plan(entries: list[PlanEntry], measured: dict[str, dict]) -> None:
    keep = ("realism_accuracy", "domain_fd", "co_move_tracked", "co_move_tracked_ceiling", "block_locality_levels",
            "style_swap_locality", "co_move_ratio", "kind_accuracy", "part_accuracy")
    atomic_write_json(relay_dir() / PLAN_NAME, {
        "models": [{"name": e.name, "config": e.config, "targets": e.targets} for e in entries],
        "measured": {n: {k: m.get(k) for k in keep if _finite(m.get(k))} for n, m in measured.items()}})


def status() -> dict:
    rec = running()
    entries, measured = read_plan()
    out: dict[str, Any] = {"running": rec is not None, "next": choose_model(entries, measured).name}
    if rec:
        out.update(rec)
        work = run_dir() / rec["model"] / "log.csv"
        if work.exists():
            last = work.read_text().strip().splitlines()[-1].split(",")
            out["step"], out["images"] = last[0], last[1]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 4 and argv[0] == "_run":
        from_run = argv[argv.index("--from") + 1] if "--from" in argv else None
        return _run(argv[1], argv[2], float(argv[3]), from_run)
    print("usage: steergan relay start|status|finish", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
