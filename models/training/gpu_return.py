"""The way back from a GPU run, on the CPU machine: put the returned files in place.

    python -m models.training.gpu_return DIR          # DIR: the files gpu_run wrote to --out

For each model whose state came back:
 - checkpoints/warm/NAME.safetensors: the warm-start state, where the next GPU run finds it;
 - checkpoints/NAME.safetensors: the shipped generator (G_ema only, fp16), with the run's
   metrics and the training history (device, images seen, minutes, runs) in its header --
   unless a shipped file with more images seen is already there (override with --ship);
 - assets/NAME_*.png sample sheets and assets/NAME_metrics.json;
and checkpoints/warm/plan.json (what the next run should do: concurrency, memory format),
assets/gpu_run_summary.json, and a row appended to the README's training log table.
"""
from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

from models.document.fileio import atomic_write_bytes, atomic_write_json
from models.io.checkpoint import CheckpointError, load_checkpoint, read_info, save_checkpoint
from models.training.gpu_run import BUNDLE, PLAN_FILE, ROOT, SUMMARY
from models.training.state import TrainStateError, load_warm_state

LOG_START = "<!-- training-log:start -->"
LOG_END = "<!-- training-log:end -->"
MAX_SHIPPED = 16 << 20
# The metrics of the log table, per model, in this order where present.
LOG_METRICS = (("realism_accuracy", "real/fake acc."), ("realism_accuracy_offsets_off", "acc. off"),
               ("co_move_tracked", "tracked co-move"), ("block_locality_levels", "block loc."),
               ("domain_fd", "FD"), ("co_move_ratio", "co-move"))


class ReturnError(Exception):
    """The returned files cannot be used; the message names the file and the problem."""


def read_bundle(path: Path) -> dict[str, bytes]:
    """The archive's regular files by name. Refuses links, absolute paths and '..'."""
    if not path.exists():
        return {}
    files = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar.getmembers():
                if m.isdir():
                    continue
                if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise ReturnError(f"{path}: refusing archive member {m.name!r}")
                member = tar.extractfile(m)
                assert member is not None  # a regular file (checked above) always has its data
                files[m.name] = member.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReturnError(f"{path}: not a readable .tar.gz ({exc})") from None
    return files


def shipped_meta(name: str, info: dict, metrics: dict | None, run: dict) -> dict:
    cfg = info.get("config") or {}
    runs = (info.get("history") or {}).get("runs", [])
    return {"name": name, "architecture": cfg.get("architecture"),
            "trained_on": {"dataset": cfg.get("dataset"), "images": info.get("images_seen"), "steps": info.get("step"),
                           "minutes": round(float(info.get("train_seconds", 0)) / 60, 2), "device": info.get("device"),
                           "training_config": cfg, "runs": runs},
            "metrics": metrics or {}, "gpu_run": run}


def ship_checkpoint(path: Path, modules: dict, info: dict, meta: dict) -> int:
    from models.config import architecture
    from models.nets.generator import Generator

    G = Generator(architecture(info["config"]["architecture"]))
    try:
        G.load_state_dict(modules["G_ema"])
    except RuntimeError as exc:
        raise ReturnError(f"G_ema does not fit architecture {info['config']['architecture']!r}: {exc}") from None
    save_checkpoint(path, G, meta)
    try:
        load_checkpoint(path)  # opens as the studio will open it
    except CheckpointError as exc:
        raise ReturnError(f"the shipped checkpoint does not open: {exc}") from None
    size = path.stat().st_size
    if size > MAX_SHIPPED:
        raise ReturnError(f"{path}: {size / 2**20:.1f} MiB, over the 16 MiB a shipped checkpoint may have")
    return size


def existing_images(path: Path) -> int | None:
    try:
        return int((read_info(path).meta.get("trained_on") or {}).get("images") or 0)
    except (CheckpointError, ValueError, TypeError):
        return None


def log_row(summary: dict, shipped: list[str]) -> str:
    m = summary.get("machine") or {}
    models = summary.get("models") or {}
    minutes = max([float(r.get("train_seconds") or 0) for r in models.values()] or [0]) / 60
    images = ", ".join(f"{n} {r.get('images_after') or 0:,}" for n, r in models.items())
    metrics = []
    for n, r in models.items():
        met = r.get("metrics") or {}
        parts = [f"{label} {met[k]:.3g}" for k, label in LOG_METRICS if isinstance(met.get(k), (int, float))]
        if parts:
            metrics.append(f"{n}: " + ", ".join(parts))
    gpu = (m.get("gpu") or m.get("device") or "?") + (" (smoke)" if summary.get("smoke") else "")
    date = summary.get("started", "?")
    date = f"{date[:4]}-{date[4:6]}-{date[6:8]} {date[9:11]}:{date[11:13]}" if len(date) >= 13 else date
    ship = ", ".join(shipped) or "none"
    return f"| {date} | {gpu} | {minutes:.1f} | {images} | {'; '.join(metrics) or 'not measured'} | {ship} |"


def append_log_row(readme: Path, row: str, start: str = LOG_START, end: str = LOG_END) -> None:
    """Append `row` to the README table between the markers `start` and `end` (the GPU
    run's training log by default; the relay's has its own)."""
    text = readme.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise ReturnError(f"{readme}: no training log table (the markers {start} and {end})")
    head, rest = text.split(start, 1)
    table, tail = rest.split(end, 1)
    table = table.rstrip("\n") + "\n" + row + "\n"
    atomic_write_bytes(readme, (head + start + table + end + tail).encode("utf-8"))


def run_tiles(data: bytes | None, gpu: str | None) -> dict | None:
    """This run's GPU model's entry of the bundle's tuned-tiles file (kernels.tune), checked
    for its shape before anything is written; None where the run tuned nothing for it."""
    if data is None or not gpu:
        return None
    try:
        tiles = json.loads(data)
    except ValueError as exc:
        raise ReturnError(f"kernels/tuned_tiles.json in the bundle is not valid JSON ({exc})") from None
    ok = isinstance(tiles, dict) and all(
        isinstance(kernels, dict) and all(isinstance(fields, dict) and all(isinstance(v, int) for v in fields.values())
                                          for fields in kernels.values()) for kernels in tiles.values())
    if not ok:
        raise ReturnError("kernels/tuned_tiles.json in the bundle is not {gpu: {kernel: {field: int}}}")
    return tiles.get(gpu)


def home_tiles(target: Path) -> dict:
    """The repository's tuned-tiles file, read before anything is written (the run's entry is
    merged into it at the end: only that entry, since the file may have gained others since
    the run copied it). The kernels take only exact candidates when they read it."""
    try:
        home = json.loads(target.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ReturnError(f"{target}: cannot be read as JSON ({exc}); fix or remove it, then run this again") from None
    if not isinstance(home, dict):
        raise ReturnError(f"{target}: not a JSON object; fix or remove it, then run this again")
    return home


def bring_back(src: Path, repo: Path = ROOT, allow_smoke: bool = False, ship: list[str] | None = None,
               readme: bool = True, say=print) -> dict:
    """Put the files of `src` in place under `repo`. -> what was done, per model."""
    summary_path = src / SUMMARY
    try:
        summary = json.loads(summary_path.read_text())
    except FileNotFoundError:
        raise ReturnError(f"{summary_path}: no such file: is {src} the output folder of a GPU run?") from None
    except ValueError as exc:
        raise ReturnError(f"{summary_path}: not valid JSON ({exc})") from None
    if summary.get("format") != "steergan-gpu-run":
        raise ReturnError(f"{summary_path}: not a GPU run summary")
    if summary.get("smoke") and not allow_smoke:
        raise ReturnError(f"{src} is a smoke run (tiny CPU models): pass --allow-smoke to bring it back anyway")
    bundle = read_bundle(src / BUNDLE)
    gpu = (summary.get("machine") or {}).get("gpu")
    tiles = None if summary.get("smoke") else run_tiles(bundle.get("kernels/tuned_tiles.json"), gpu)
    tiles_file = repo / "kernels" / "tuned_tiles.json"
    all_tiles = home_tiles(tiles_file) if tiles is not None else {}
    ckpt_dir, warm_dir, assets = repo / "checkpoints", repo / "checkpoints" / "warm", repo / "assets"
    for d in (ckpt_dir, warm_dir, assets):
        d.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    shipped = []
    for name, result in (summary.get("models") or {}).items():
        state = src / f"{name}.safetensors"
        if not state.exists():
            say(f"{name}: no state came back ({result.get('phase')}): nothing to do")
            continue
        try:
            modules, info = load_warm_state(state)
        except TrainStateError as exc:
            raise ReturnError(str(exc)) from None
        atomic_write_bytes(warm_dir / state.name, state.read_bytes())
        entry = {"warm": str(warm_dir / state.name), "images": info.get("images_seen")}
        target = ckpt_dir / f"{name}.safetensors"
        old = existing_images(target) if target.exists() else None
        if (ship and name in ship) or old is None or (info.get("images_seen") or 0) >= old:
            metrics = result.get("metrics")
            run = {"date": summary.get("started"), "device": (summary.get("machine") or {}).get("gpu"),
                   "phase": result.get("phase"), "kernel_backend": result.get("kernel_backend")}
            entry["shipped_bytes"] = ship_checkpoint(target, modules, info, shipped_meta(name, info, metrics, run))
            entry["shipped"] = str(target)
            shipped.append(name)
            for arc, data in bundle.items():
                if arc.startswith(f"{name}/sheets/") and arc.endswith(".png"):
                    atomic_write_bytes(assets / Path(arc).name, data)
            if metrics:
                atomic_write_json(assets / f"{name}_metrics.json", metrics)
        else:
            entry["kept"] = f"{target} has {old} images seen, this run {info.get('images_seen')}: not replaced"
        done[name] = entry
        say(f"{name}: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
    if summary.get("next_plan"):
        atomic_write_json(warm_dir / PLAN_FILE, summary["next_plan"])
    if tiles is not None and gpu:
        atomic_write_json(tiles_file, {**all_tiles, gpu: tiles})
        done["tuned_tiles"] = {"file": str(tiles_file), "gpu": gpu, "kernels": sorted(tiles)}
        say(f"MTM kernel tiles: {done['tuned_tiles']}")
    atomic_write_json(assets / "gpu_run_summary.json", summary)
    if readme:
        row = log_row(summary, shipped)
        append_log_row(repo / "README.md", row)
        say(f"README training log: {row}")
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.training.gpu_return", description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path, help="the folder of files a GPU run returned")
    p.add_argument("--repo", type=Path, default=ROOT, help="the repository to update (default this one)")
    p.add_argument("--allow-smoke", action="store_true", help="accept a CPU smoke run (for tests)")
    p.add_argument("--ship", nargs="+", help="ship these models even if a checkpoint with more images exists")
    p.add_argument("--no-readme", action="store_true", help="do not append to the README's training log")
    args = p.parse_args(argv)
    try:
        bring_back(args.dir, args.repo, args.allow_smoke, args.ship, not args.no_readme)
    except ReturnError as exc:
        print(f"gpu_return: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
