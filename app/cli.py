"""The `steergan` command: the studio (no arguments), and headless render / video / bench / info.

torch and the model modules are imported inside the subcommands that use them: `steergan`
alone shows the studio's window before torch is loaded (start-up, README), and
`steergan --help` answers at once. Torch-free modules (config, document) come first."""
from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from models.config import ConfigError
from models.document.fileio import ExportError, FileProblem, atomic_write_bytes, open_regular, write_image
from models.document.scene import MAX_TIME, SceneError, initial_state
from models.document.session import SessionError, load_session, resolve_checkpoint_path
from models.document.video_timing import MAX_FRAMES, MAX_GIF_FPS, frame_count

SUBCOMMANDS = ("render", "video", "bench", "info", "train", "eval", "relay", "fit")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        if argv[0] in ("render", "video", "bench", "fit"):
            from app.studio import configure_render_threads

            configure_render_threads()  # the studio's thread count: the same pixels as its exports
        parser = build_parser()
        args = parser.parse_args(argv)
        try:
            return _run_falling_back_to_cpu(argv[0], args)
        except UserError as exc:
            print(f"steergan {argv[0]}: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError as exc:
            if _stdout_reader_gone():
                # The reader of our stdout left (`steergan relay status | grep -q running`,
                # `| head`): not an error to report. Point stdout at /dev/null so that the
                # flush at exit stays quiet.
                _quiet_stdout()
                return 0
            return _file_problem(argv[0], exc)  # another pipe broke (a child process that died)
        except OSError as exc:
            return _file_problem(argv[0], exc)
    if argv and looks_like_subcommand(argv[0]):
        print(f"steergan: error: unknown subcommand {argv[0][:40]!r}; known: {', '.join(SUBCOMMANDS)}"
              " (to open a file, give its path)", file=sys.stderr)
        return 2
    return run_studio(argv)


def _run_falling_back_to_cpu(command: str, args: argparse.Namespace) -> int:
    """render and video on a GPU that runs out of memory: again on the CPU, said on stderr
    (as the studio's worker does). Training is not retried: on the CPU it would take hours."""
    try:
        return args.func(args)
    except Exception as exc:
        from models.render import is_out_of_memory

        if command not in ("render", "video") or args.device == "cpu" or not is_out_of_memory(exc):
            raise
    print(f"steergan {command}: note: {args.device} ran out of memory; rendering on the CPU instead",
          file=sys.stderr)
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    args.device = "cpu"
    return args.func(args)


def _file_problem(command: str, exc: OSError) -> int:
    # The net under the specific handlers: a file problem is the user's to fix, so it gets
    # one line naming the file, not a traceback.
    where = f"{exc.filename}: " if exc.filename else ""
    print(f"steergan {command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
    return 2


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it: Linux's poll reports POLLERR on
    such a write end. Where stdout has no descriptor (a test's capture) or there is no
    poll (Windows), the broken pipe is taken to be stdout's, the common case."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
    except (OSError, ValueError, AttributeError):
        return True
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _quiet_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind sys.stdout (a test's capture)
        pass
    finally:
        os.close(devnull)


def looks_like_subcommand(word: str) -> bool:
    """A bare word that names no file ('bogus'): a mistyped subcommand, not a checkpoint."""
    return (not word.startswith("-") and "." not in word and "/" not in word and os.sep not in word
            and not Path(word).exists())


class UserError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


def _add_scene_arguments(parser: argparse.ArgumentParser, checkpoint_help: str) -> None:
    """What render and video share: the generator and the scene it draws."""
    parser.add_argument("--checkpoint", help=checkpoint_help)
    parser.add_argument("--session", help="a session .json to render (its scene and checkpoint)")
    parser.add_argument("--arch", help="render an untrained model of this built-in architecture")
    parser.add_argument("--seed", type=int, help="draw a new scene from this seed")
    parser.add_argument("--offsets", choices=("on", "off"), help="MTM offsets on or off")
    parser.add_argument("--kinds", metavar="K1,K2,...", help="what each object is, in order (a generator told"
                        " kinds: bed, window, painting, lamp, plant, rug)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steergan", description="SteerGAN Studio")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="render a scene to an image, headlessly")
    _add_scene_arguments(r, "a .safetensors checkpoint (default: the bundled one)")
    r.add_argument("--size", type=int, help="output size in pixels (default: the generator's)")
    r.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    r.add_argument("-o", "--output", required=True, help="output image: .png, .jpg or .webp")
    r.set_defaults(func=cmd_render)

    v = sub.add_parser("video", help="render a scene over time to an MP4 or GIF, headlessly")
    _add_scene_arguments(v, "a .safetensors checkpoint (default: the bundled clips model, if any)")
    v.add_argument("--seconds", type=float, required=True, help="length of the video in seconds")
    v.add_argument("--fps", type=float, required=True, help=f"frames per second (GIF: at most {MAX_GIF_FPS})")
    v.add_argument("--start", type=float, default=0.0, help="time of the first frame in seconds (default 0)")
    v.add_argument("--size", type=int, help="frame size in pixels (default: the generator's; even for MP4)")
    v.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    v.add_argument("-o", "--output", required=True, help="output video: .mp4 or .gif")
    v.set_defaults(func=cmd_video)

    b = sub.add_parser("bench", help="time one render per architecture; prints JSON")
    b.add_argument("--repeats", type=int, default=20,
                   help="renders timed per architecture, after 3 warm-up renders; the median is printed (default 20)")
    b.add_argument("--arch", action="append", help="architectures to time (default: all shipped ones)")
    b.set_defaults(func=cmd_bench)

    i = sub.add_parser("info", help="print a checkpoint's description as JSON")
    i.add_argument("checkpoint", help="a .safetensors checkpoint")
    i.set_defaults(func=cmd_info)

    t = sub.add_parser("train", help="train a generator on procedural data (torchrun for several GPUs)")
    t.add_argument("config", help="a training config name (rooms, figures, ...) or a .json file")
    t.add_argument("--out", help="run folder (default runs/CONFIG)")
    t.add_argument("--minutes", type=float, help="stop cleanly after this much training time and save")
    t.add_argument("--steps", type=int, help="stop after this many steps in all (for tests; with --warm-start, this"
                                             " many more)")
    t.add_argument("--resume", help="a run folder or its train_state.safetensors")
    t.add_argument("--warm-start", metavar="STATE",
                   help="start from a relay or GPU-run warm state (weights and images seen; fresh optimiser"
                        " moments): a comparison from the relay's model; or from a shipped checkpoint (its"
                        " generator, D afresh); a StyleGAN2-recipe state's D becomes a projected recipe's"
                        " pixel D (d_pixel); a generator whose finest level is wider grows from a narrower"
                        " one's state (rooms-cpu-wide from rooms-cpu); saves RUN/state.safetensors and"
                        " RUN/CONFIG.safetensors")
    t.add_argument("--fresh-d", action="store_true",
                   help="with --warm-start: take only G from the state and start D afresh (to try another D"
                        " design on a trained G)")
    t.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (default): bf16 autocast on a GPU and on a CPU with bf16 in hardware, else fp32")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="measure a checkpoint's steering metrics; prints JSON")
    e.add_argument("checkpoint", help="a .safetensors checkpoint")
    e.add_argument("--samples", type=int, default=256,
                   help="scenes drawn for each steering metric (default 256)")
    e.add_argument("--fd-samples", type=int, help="images per set for the domain FD (default max(samples, 512))")
    e.add_argument("--realism-samples", type=int,
                   help="images a side for the realism classifier (default max(samples, 16); 256 or more to report)")
    e.add_argument("--json", help="also write the metrics to this file")
    e.add_argument("--store", action="store_true", help="write the metrics into the checkpoint's own JSON")
    e.add_argument("--probe", help="the metrics probe (default checkpoints/probe.safetensors)")
    e.set_defaults(func=cmd_eval)

    rl = sub.add_parser("relay", help="train the bundled CPU models in the background while you work")
    rl_sub = rl.add_subparsers(dest="relay_command", required=True)
    rs = rl_sub.add_parser("start", help="start training in the background (nice), until a deadline")
    when = rs.add_mutually_exclusive_group(required=True)
    when.add_argument("--until", help="local time HH:MM (today, or tomorrow if it has passed) to stop by itself")
    when.add_argument("--minutes", type=float, help="stop by itself after this many minutes")
    rs.add_argument("--model", help="train this model of the plan (default: the plan chooses)")
    rs.add_argument("--from", dest="from_run",
                    help="continue a comparison run instead of the relay's own state: its folder (full state, or"
                         " a --warm-start run's state.safetensors) or state file")
    rs.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    rl_sub.add_parser("status", help="is a relay running, on which model, how far")
    rf = rl_sub.add_parser("finish", help="stop it, measure, ship if no worse, log a README row")
    rf.add_argument("--no-sheets", action="store_true", help="do not redraw the README's sample sheets")
    rf.add_argument("--override-gate", action="store_true",
                    help="ship the run's model even where the gate refuses it (a decision by hand: the README row"
                         " records the gate's reasons)")
    rl.set_defaults(func=cmd_relay)

    f = sub.add_parser("fit", help="fit a generator to a picture: a scene whose objects you can then drag")
    f.add_argument("image", help="the picture: PNG, JPEG, WebP, BMP, TIFF or GIF (cropped to its centred square)")
    f.add_argument("--checkpoint", help="a .safetensors checkpoint (default: the bundled one)")
    f.add_argument("-o", "--output", required=True, help="the session .json to write (its fit file goes beside it)")
    f.add_argument("--tune", action="store_true", help="also tune the generator's weights (pivotal tuning)")
    f.add_argument("--seconds", type=float, default=30.0,
                   help="at most this long for the latents (default 30; 400 steps take ~22 s on 2 idle cores)")
    f.add_argument("--tune-seconds", type=float, default=30.0, help="at most this long for pivotal tuning (default 30)")
    f.add_argument("--seed", type=int, default=0, help="the fit's seed: the same seed gives the same fit")
    f.add_argument("--preview", help="also write the reconstruction to this image")
    f.set_defaults(func=cmd_fit)
    return parser


def parse_until(text: str, now: float | None = None) -> float:
    """'HH:MM' -> the next such local time as a Unix time."""
    import time

    now = time.time() if now is None else now
    try:
        hh, mm = (int(x) for x in text.split(":"))
        if not (0 <= hh < 24 and 0 <= mm < 60):
            raise ValueError
    except ValueError:
        raise UserError(f"--until must be a time HH:MM, got {text[:20]!r}") from None
    t = time.localtime(now)
    target = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, hh, mm, 0, 0, 0, -1))
    return target if target > now else target + 86400


def cmd_relay(args: argparse.Namespace) -> int:
    import time

    from models.training import relay

    try:
        if args.relay_command == "start":
            if args.minutes is not None and not (0 < args.minutes < 24 * 60):
                raise UserError(f"--minutes must be between 0 and 1440, got {args.minutes}")
            until = parse_until(args.until) if args.until else time.time() + args.minutes * 60
            rec = relay.start(until, args.model, Path(args.from_run) if args.from_run else None,
                              threads=args.threads)
            print(f"relay started: {rec['model']} (pid {rec['pid']}) until"
                  f" {time.strftime('%H:%M', time.localtime(until))}; log {rec['log']}", file=sys.stderr)
        elif args.relay_command == "status":
            print(json.dumps(relay.status(), indent=2))
        else:
            results = relay.finish(log=lambda m: print(m, file=sys.stderr), sheets=not args.no_sheets,
                                   override_gate=args.override_gate)
            for name, r in results.items():
                why = "; ".join(r["reasons"])
                verdict = ("shipped" if not why else
                           f"shipped over the gate ({why})" if r["shipped"] else f"not shipped ({why})")
                print(f"{name}: {r['images_after']:,} images, {verdict}")
    except relay.RelayError as exc:
        raise UserError(str(exc)) from None
    return 0


def check_device(value: str) -> str:
    """A --device value that this machine can run on, or UserError saying why not."""
    from models.render import usable_device

    try:
        return usable_device(value)
    except ValueError as exc:
        raise UserError(f"--device {exc}") from None


def _check_readable(path: str | Path) -> None:
    """A path read by code that would block on a FIFO: refuse anything not a regular file."""

    try:
        open_regular(path).close()
    except FileProblem as exc:
        raise UserError(f"{path}: {exc.problem}") from None


def _open(checkpoint: str | None, arch: str | None, device: str):
    from models.io.checkpoint import CheckpointError
    from models.io.library import open_generator

    try:
        return open_generator(checkpoint, device=device, arch=arch)
    except (CheckpointError, ConfigError) as exc:
        raise UserError(str(exc)) from None


def _check_seed(seed: int) -> None:
    from models.document.scene import SEED_LIMIT

    if not 0 <= seed < SEED_LIMIT:
        raise UserError(f"--seed must be in [0, 2^31), got {seed}")


def _open_scene(args: argparse.Namespace):
    """(the loaded generator, the scene) that --checkpoint/--session/--arch/--seed/--offsets/
    --kinds ask for: shared by render and video."""


    device = check_device(args.device)
    if args.seed is not None:
        _check_seed(args.seed)
    state, checkpoint, ref = None, args.checkpoint, None
    if args.session:
        try:
            state, ref = load_session(args.session)
        except SessionError as exc:
            raise UserError(str(exc)) from None
        if checkpoint is None and args.arch is None:
            checkpoint = resolve_checkpoint_path(ref, args.session)
            if checkpoint is None:
                args.arch = ref.architecture
        else:
            ref = None  # the user chose the generator: the session's reference does not apply
    loaded = _open(checkpoint, args.arch, device)
    if ref is not None and ref.sha256 is not None and loaded.ref.sha256 != ref.sha256:
        raise UserError(f"{args.session}: its checkpoint {checkpoint} has changed since the session was saved"
                        f" (SHA-256 {loaded.ref.sha256[:12]}…, the session has {ref.sha256[:12]}…), so the"
                        f" picture would differ; pass --checkpoint {checkpoint} to render with it anyway")
    if not loaded.trained:
        print(f"note: {loaded.name} is an untrained model: expect noise-like images", file=sys.stderr)
    cfg = loaded.generator.config
    if state is None:
        state = initial_state(cfg, args.seed if args.seed is not None else 0)
    elif args.seed is not None:
        state = state.new_sample(args.seed, cfg.layout_prior, tuple(cfg.object_kinds))
    if args.offsets is not None:
        state = replace(state, offsets_on=args.offsets == "on")
    if args.kinds is not None:
        state = _with_kinds(state, args.kinds, tuple(cfg.object_kinds), loaded.name)
    return loaded, state


def _with_kinds(state, text: str, kinds: tuple[str, ...], name: str):
    """The scene with its objects made the kinds `text` names in order ("bed,lamp,plant")."""
    if not kinds:
        raise UserError(f"--kinds: {name} is not told its objects' kinds (a generator with object_kinds is)")
    asked = [k.strip() for k in text.split(",")]
    if len(asked) != len(state.objects) or not all(asked):
        raise UserError(f"--kinds names {len(asked)} kinds, and the scene has {len(state.objects)} objects:"
                        f" give one for each, separated by commas ({', '.join(kinds)})")
    unknown = [k for k in asked if k not in kinds]
    if unknown:
        raise UserError(f"--kinds: {unknown[0]!r:.40} is not one of {name}'s kinds ({', '.join(kinds)})")
    for i, kind in enumerate(asked):
        state = state.with_object(i, kind=kind)
    return state


def _fitted(loaded, state, near: str | None):
    """(the generator to render `state` with, its fit file or None): a scene fitted to a
    picture names a fit file (models/io/fit_file.py)."""
    from models.io.fit_file import FitFileError, open_fit_for

    try:
        return open_fit_for(state, near, loaded.generator, loaded.ref.sha256)
    except FitFileError as exc:
        raise UserError(str(exc)) from None


def _check_size(size: int | None) -> None:
    if size is not None and not 8 <= size <= 8192:
        raise UserError(f"--size must be between 8 and 8192 pixels, got {size}")


def cmd_fit(args: argparse.Namespace) -> int:
    from models.document.fileio import FileError
    from models.document.session import CheckpointRef, session_to_json
    from models.fit import why_not_fittable
    from models.fit.optimize import TUNE_STEPS, FitCancelled, FitSettings, fit_picture
    from models.io.backbone_file import BackboneError, backbone_path, load_backbone
    from models.io.fit_file import save_fit
    from models.io.picture import PictureError, picture_tensor, read_picture

    for name in ("seconds", "tune_seconds"):
        value = getattr(args, name)
        if not (math.isfinite(value) and 0 < value <= 3600):
            raise UserError(f"--{name.replace('_', '-')} must be between 0 and 3600, got {value}")
    _check_seed(args.seed)
    out = Path(args.output)
    if out.suffix.lower() != ".json":
        raise UserError(f"{out}: the scene is written as a session .json")
    loaded = _open(args.checkpoint, None, "cpu")
    problem = why_not_fittable(loaded.name, loaded.ref, loaded.generator.config, loaded.trained)
    if problem is not None:  # as the studio refuses it
        raise UserError(f"{problem}; fitting needs a trained still-image checkpoint (--checkpoint)")
    try:
        picture = read_picture(args.image, loaded.generator.config.resolution)
        backbone, _ = load_backbone(backbone_path())
    except (PictureError, BackboneError) as exc:
        raise UserError(str(exc)) from None
    live = sys.stderr.isatty()

    def progress(stage: str, step: int, total: int, value: float, _image) -> None:
        if live:
            print(f"\r{stage} {step}/{total}  {value:.1f} dB   ", end="", file=sys.stderr, flush=True)

    settings = FitSettings(seconds=args.seconds, tune_steps=TUNE_STEPS if args.tune else 0,
                           tune_seconds=args.tune_seconds, seed=args.seed)
    try:
        with _terminate_cancels():
            result = fit_picture(loaded.generator, picture_tensor(picture), loaded.ref.sha256, backbone, settings,
                                 progress=progress)
    except (KeyboardInterrupt, FitCancelled):
        print(f"\ncancelled: {out} was not written", file=sys.stderr)
        return 130
    except ValueError as exc:
        raise UserError(f"{loaded.name}: {exc}") from None
    result.fit.info["picture"] = Path(args.image).name[:200]
    try:
        save_fit(result.fit, out.parent if str(out.parent) else Path("."))
        state = replace(result.state, fit=result.fit.sha256)
        checkpoint_path = os.path.relpath(loaded.ref.path, out.resolve().parent) if loaded.ref.path else None
        atomic_write_bytes(out, session_to_json(state, CheckpointRef(checkpoint_path, loaded.ref.sha256)).encode())
        if args.preview:
            write_image(args.preview, result.image)
    except FileError as exc:
        raise UserError(str(exc)) from None
    print(("\n" if live else "") + f"wrote {out} and its fit file {result.fit.sha256[:12]}…"
          f" ({loaded.name}; PSNR {result.psnr:.2f} dB, latents alone {result.psnr_latents:.2f} dB;"
          f" {result.steps} + {result.tune_steps} steps in {result.seconds:.1f} s)")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from models.render import render, resize_image

    _check_size(args.size)
    loaded, state = _open_scene(args)
    generator, fit = _fitted(loaded, state, args.session)
    try:
        frame = render(generator, state, fit=fit)
    except SceneError as exc:
        raise UserError(f"the scene does not fit {loaded.name}: {exc}") from None
    image = frame.image
    if args.size is not None:
        image = resize_image(image, args.size)
    try:
        write_image(args.output, image)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]}, {loaded.name})")
    return 0


def cmd_video(args: argparse.Namespace) -> int:

    from models.io.video import CLIPS_CHECKPOINT, frames, write_video
    from models.render import render

    _check_size(args.size)
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise UserError(f"--seconds must be a positive number, got {args.seconds}")
    if not (math.isfinite(args.start) and args.start >= 0):
        raise UserError(f"--start must be a time of at least 0 seconds, got {args.start}")
    if not (math.isfinite(args.fps) and args.fps > 0):
        raise UserError(f"--fps must be a positive number, got {args.fps}")
    if args.seconds * args.fps >= MAX_FRAMES + 0.5:  # before counting: 1e300 s would print a 300-digit count
        raise UserError(f"--seconds {args.seconds:g} at --fps {args.fps:g} is more than {MAX_FRAMES:,} frames,"
                        f" the most one video may have")
    total = frame_count(args.seconds, args.fps)
    if args.start + args.seconds > MAX_TIME:
        raise UserError(f"--start {args.start:.12g} + --seconds {args.seconds:.12g} ends after {MAX_TIME:g} s,"
                        f" the latest time a scene may have")
    if args.checkpoint is None and args.session is None and args.arch is None and CLIPS_CHECKPOINT.exists():
        args.checkpoint = str(CLIPS_CHECKPOINT)
    loaded, state = _open_scene(args)
    if loaded.generator.config.time is None:
        print(f"note: {loaded.name} has no time capability: every frame is the same picture", file=sys.stderr)
    live = sys.stderr.isatty()

    def progress(done: int, of: int) -> None:
        if live:
            print(f"\rframe {done}/{of}", end="", file=sys.stderr, flush=True)

    generator, fit = _fitted(loaded, state, args.session)
    source = frames(generator, state, args.seconds, args.fps, size=args.size, start=args.start,
                    render_fn=lambda g, s: render(g, s, fit=fit))
    try:
        with _terminate_cancels():
            write_video(args.output, source, args.fps, total, progress=progress)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    except SceneError as exc:
        raise UserError(f"the scene does not fit {loaded.name}: {exc}") from None
    except KeyboardInterrupt:
        print(f"\ncancelled: {args.output} was not written", file=sys.stderr)
        return 130
    side = args.size or loaded.generator.config.resolution
    print(("\n" if live else "") + f"wrote {args.output} ({total} frames, {side}x{side}, {args.fps:g} fps,"
          f" {loaded.name})")
    return 0


@contextmanager
def _terminate_cancels():
    """SIGTERM (kill, a closed terminal) cancels like Ctrl-C: an uncaught SIGTERM would end
    Python at once and leave the export's temporary file behind."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_stop(trainer):
    """Ctrl-C and SIGTERM stop training after the step in progress, which then saves (a
    second Ctrl-C interrupts at once): see Trainer.on_stop_signal."""
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, trainer.on_stop_signal)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _refuse_a_used_run_folder(out: str, state_name: str, what: str) -> None:
    """A new run would cut the folder's log and overwrite its state and checkpoint at its
    first save: refused, unless the user continues it (--resume) or names another folder."""
    for name in (state_name, "log.csv"):
        if (Path(out) / name).exists():
            raise UserError(f"{out}: holds a run already ({name}); {what} would overwrite it: continue it with"
                            f" --resume {out}, or choose another --out")


def cmd_bench(args: argparse.Namespace) -> int:
    from models.tools.bench import run_benchmark

    if args.repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {args.repeats}")
    print(json.dumps(run_benchmark(args.arch, args.repeats), indent=2))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from models.io.checkpoint import CheckpointError, read_info

    try:
        info = read_info(args.checkpoint)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    print(json.dumps({"path": info.path, "sha256": info.sha256, **info.meta}, indent=2, sort_keys=True))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from models.io.backbone_file import BackboneError
    from models.io.checkpoint import CheckpointError
    from models.training.configs import training_config
    from models.training.state import TrainStateError
    from models.training.trainer import Trainer, TrainingDiverged

    try:
        cfg = training_config(args.config)  # a bad file's error names it
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    device = check_device(args.device) if args.device else ("cuda" if torch.cuda.is_available() else "cpu")
    for name in ("minutes", "steps"):
        value = getattr(args, name)
        if value is not None and not (value > 0 and value == value and value != float("inf")):
            raise UserError(f"--{name} must be a positive number, got {value}")
    out = args.out or str(Path("runs") / cfg.name)
    if args.fresh_d and not args.warm_start:
        raise UserError("--fresh-d goes with --warm-start (it says which parts of the warm state to take)")
    if args.warm_start:
        if args.resume:
            raise UserError("--warm-start and --resume exclude each other: a warm state starts a new run,"
                            " --resume continues one")
        _refuse_a_used_run_folder(out, "state.safetensors", "--warm-start")
        return _train_from_warm_state(cfg, out, device, args)
    if not args.resume:
        _refuse_a_used_run_folder(out, "train_state.safetensors", "training from scratch")
    try:
        trainer = Trainer(cfg, out, device=device, resume=args.resume, precision=args.precision)
    except (TrainStateError, BackboneError) as exc:
        raise UserError(str(exc)) from None
    print(f"training {cfg.name} on {device} ({trainer.precision}) into {out} (step {trainer.step})", file=sys.stderr)
    finished = False
    try:
        with _signals_stop(trainer):
            ckpt = trainer.run(minutes=args.minutes, max_steps=args.steps)
        finished = True
    except (TrainStateError, CheckpointError) as exc:  # a save failed (a full disk): the last good files stay
        raise UserError(f"{exc}; training stopped at step {trainer.step}") from None
    except TrainingDiverged as exc:
        raise UserError(str(exc)) from None
    finally:
        trainer.close(clean=finished)
    if trainer.rank == 0:  # the other processes of a torchrun save nothing themselves
        print(f"\nsaved {ckpt} at step {trainer.step} ({trainer.images_seen} images)", file=sys.stderr)
    return 0


def _train_from_warm_state(cfg, out: str, device: str, args: argparse.Namespace) -> int:
    """Continue a warm state's weights under `cfg` (whose loss settings may differ from the
    state's: that is the point of a comparison from the relay's model), saving the small warm
    state as it goes and, at the end, its EMA generator as a checkpoint to evaluate."""
    from models.io.backbone_file import BackboneError
    from models.training.gpu_worker import WarmTrainer
    from models.training.relay import RelayError, checkpoint_from_warm_state
    from models.training.state import TrainStateError, saved_kind
    from models.training.trainer import TrainingDiverged

    _check_readable(args.warm_start)
    state_out = Path(out) / "state.safetensors"
    try:
        trainer = WarmTrainer(cfg, Path(out), device, state_out=state_out, precision=args.precision)
        trainer.warm_start(Path(args.warm_start), fresh_d=args.fresh_d)
    except (TrainStateError, BackboneError) as exc:
        raise UserError(str(exc)) from None
    shipped = " (a checkpoint: its generator, D afresh)" if saved_kind(args.warm_start) == "checkpoint" else ""
    print(f"training {cfg.name} on {device} ({trainer.precision}) into {out} from {args.warm_start}{shipped}"
          f" (step {trainer.step}, {trainer.images_seen} images)", file=sys.stderr)
    try:
        with _signals_stop(trainer):
            trainer.run(minutes=args.minutes, max_steps=None if args.steps is None else trainer.step + args.steps)
    except (TrainStateError, TrainingDiverged) as exc:
        raise UserError(f"{exc}; training stopped at step {trainer.step}") from None
    finally:
        trainer.close()
    try:
        ckpt, _ = checkpoint_from_warm_state(cfg.name, state_out, Path(out) / f"{cfg.name}.safetensors")
    except RelayError as exc:
        raise UserError(str(exc)) from None
    print(f"\nsaved {ckpt} at step {trainer.step} ({trainer.images_seen} images)", file=sys.stderr)
    return 0


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve() or Path(a).samefile(b)
    except OSError:  # one of them does not exist: not the same file
        return False


def cmd_eval(args: argparse.Namespace) -> int:
    from models.io.checkpoint import CheckpointError, store_metrics
    from models.metrics.evaluate import evaluate
    from models.metrics.probe import DEFAULT_PROBE, load_probe

    if args.samples < 1 or (args.fd_samples is not None and args.fd_samples < 2):
        raise UserError("--samples must be at least 1 and --fd-samples at least 2")
    if args.realism_samples is not None and args.realism_samples < 8:
        raise UserError(f"--realism-samples must be at least 8 (the classifier test's images a side),"
                        f" got {args.realism_samples}")
    if args.json:  # before minutes of measuring: never over the checkpoint, the probe or a non-JSON file
        if Path(args.json).suffix.lower() != ".json":
            raise UserError(f"--json {args.json}: must end in .json (it is written over)")
        for other in (args.checkpoint, args.probe or DEFAULT_PROBE):
            if _same_file(args.json, other):
                raise UserError(f"--json {args.json}: is {other}, which it would replace")
    loaded = _open(args.checkpoint, None, "cpu")
    _check_readable(args.probe or DEFAULT_PROBE)
    try:
        probe, _ = load_probe(args.probe or DEFAULT_PROBE)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    metrics = evaluate(loaded.generator, probe, samples=args.samples, fd_samples=args.fd_samples,
                       realism_samples=args.realism_samples, log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(metrics, indent=2, sort_keys=True)
    print(text)
    if args.json:
        try:
            atomic_write_bytes(args.json, (text + "\n").encode())
        except OSError as exc:
            raise UserError(f"{args.json}: cannot write ({exc.strerror or exc})") from None
    if args.store:
        try:
            store_metrics(args.checkpoint, metrics, expect_sha256=loaded.ref.sha256)
        except CheckpointError as exc:
            raise UserError(str(exc)) from None
        print(f"stored the metrics in {args.checkpoint}", file=sys.stderr)
    return 0


def run_studio(argv: list[str]) -> int:
    from app.studio import launch

    return launch(argv)


if __name__ == "__main__":
    sys.exit(main())
