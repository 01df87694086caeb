"""Video export, for the CLI and the studio: frames of a scene over time, streamed to an
MP4 (the ffmpeg of imageio-ffmpeg, libx264, yuv420p) or GIF encoder.

Frames are produced one at a time and handed to the encoder at once, so memory stays flat
however long the video. The file is written atomically (models.document.fileio.AtomicTarget): a
temporary file in the target's folder, renamed over the target only once the encoder has
exited cleanly and the file on disk holds every frame; on an error, a full disk or a
cancel the temporary file is deleted, so no partial video is ever left (and an existing
file at the path is untouched).
"""
from __future__ import annotations

import errno
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from models.document.fileio import AtomicTarget, ExportError
from models.document.scene import SceneState
from models.document.video_timing import MAX_FRAMES, check_target, frame_count, frame_time
from models.io.bundled import CHECKPOINT_DIR
from models.render import render, resize_image

CLIPS_CHECKPOINT = CHECKPOINT_DIR / "clips.safetensors"  # `steergan video`'s default, once it ships


class Cancelled(Exception):
    """The export was cancelled; no file was written."""


def frames(generator, state: SceneState, seconds: float, fps: float, size: int | None = None,
           start: float = 0.0, render_fn: Callable = render) -> Iterator[np.ndarray]:
    """[H, W, 3] uint8 frames at t = start + i / fps, each rendered by `render_fn(generator,
    state)` (render() unless the caller wraps it, as the studio does to fall back to the CPU)
    from the state with that time: every edit in the state applies to every frame."""
    for i in range(frame_count(seconds, fps)):
        image = render_fn(generator, replace(state, time=frame_time(start, i, fps))).image
        yield image if size is None else resize_image(image, size)


class _GifStream:
    """An animated GIF written frame by frame: Pillow quantises and LZW-encodes each frame,
    this writes the container around them. (Pillow's and imageio's GIF writers keep every
    frame until the end and merge identical frames, which would break both the flat memory
    and the frame count.)"""

    def __init__(self, path: str, fps: float):
        self.file = open(path, "wb")
        self.fps, self.count, self.clock_cs, self.written = fps, 0, 0, 0

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.written += len(data)

    def append(self, frame: np.ndarray) -> None:
        from PIL import Image
        from PIL.GifImagePlugin import getdata

        h, w = frame.shape[:2]
        if self.count == 0:
            self._write(b"GIF89a" + w.to_bytes(2, "little") + h.to_bytes(2, "little") + b"\x00\x00\x00")
            self._write(b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
        # Whole centiseconds, with the rounding carried over, so the average rate is exact
        # (30 fps: 3, 3, 4, 3, 3, 4 cs).
        end_cs = round((self.count + 1) * 100 / self.fps)
        delay, self.clock_cs = end_cs - self.clock_cs, end_cs
        image = Image.fromarray(np.ascontiguousarray(frame)).quantize(256)
        for chunk in getdata(image, duration=delay * 10, disposal=1, include_color_table=True):
            self._write(chunk)
        self.count += 1

    def close(self) -> None:
        if not self.file.closed:
            try:
                self._write(b";")
            finally:
                self.file.close()

    abort = close

    def check(self, path: str, frames: int) -> None:
        """The file on disk is every byte we wrote (a full disk shows up here at the latest)."""
        size = os.stat(path).st_size
        if size != self.written or self.count != frames:
            raise OSError(errno.EIO, f"the GIF on disk has {size} of {self.written} bytes written")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


class _Mp4Stream:
    """ffmpeg (from imageio-ffmpeg) encoding raw RGB frames from a pipe to H.264 in MP4, run
    directly so that its exit status is checked: imageio's writer ignores it, and a full
    disk then passed for success. The settings are imageio's defaults (CRF 25, yuv420p)."""

    def __init__(self, path: str, fps: float):
        self.path, self.fps = path, fps
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # ffmpeg's messages, read back when it fails

    def _start(self, width: int, height: int) -> subprocess.Popen[bytes]:
        rate = str(Fraction(self.fps).limit_denominator())
        cmd = [ffmpeg_exe(), "-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-vcodec", "rawvideo",
               "-s", f"{width}x{height}", "-pix_fmt", "rgb24", "-r", rate, "-i", "-", "-an",
               "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", "25", "-f", "mp4", self.path]
        # A session of its own: Ctrl-C in the terminal reaches us, and we stop ffmpeg.
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self.log,
                                start_new_session=True)

    def _failure(self, what: str) -> RuntimeError:
        self.log.seek(0)
        lines = [ln.strip() for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        return RuntimeError(what + (f": {lines[-1]}" if lines else ""))

    def append(self, frame: np.ndarray) -> None:
        if self.process is None:
            self.process = self._start(frame.shape[1], frame.shape[0])
        assert self.process.stdin is not None  # started with stdin=PIPE
        try:
            self.process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError:  # ffmpeg has stopped reading: it failed
            self.process.wait()
            raise self._failure(f"the encoder (ffmpeg) stopped with exit status {self.process.returncode}") from None

    def close(self) -> None:
        if self.process is None:
            raise RuntimeError("no frames were encoded")
        assert self.process.stdin is not None  # started with stdin=PIPE
        try:
            self.process.stdin.close()
        except OSError:
            pass
        status = self.process.wait()
        if status != 0:
            raise self._failure(f"the encoder (ffmpeg) failed with exit status {status}")
        self.log.close()

    def abort(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def check(self, path: str, frames: int) -> None:
        """Count the video's frames by remuxing it to nowhere (no decoding: fast)."""
        found = count_mp4_frames(path)
        if found is None:
            raise OSError(errno.EIO, "the written video cannot be read back")
        if found != frames:
            raise OSError(errno.EIO, f"the written video has {found} frames of {frames}")


def count_mp4_frames(path: str | os.PathLike) -> int | None:
    """Frames in a video file's first video stream, by ffmpeg; None if it cannot be read."""
    try:
        res = subprocess.run([ffmpeg_exe(), "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null",
                              "-"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             timeout=600)
    except subprocess.TimeoutExpired:
        return None
    counts = re.findall(rb"frame=\s*(\d+)", res.stderr)
    return int(counts[-1]) if res.returncode == 0 and counts else None


def _check_frame(path: Path, kind: str, frame: np.ndarray, first: np.ndarray | None) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ExportError(path, f"frames must be [H, W, 3] uint8, got {frame.dtype} {frame.shape}")
    if first is not None and frame.shape != first.shape:
        raise ExportError(path, f"frame size changed from {first.shape[:2]} to {frame.shape[:2]}")
    if kind == ".mp4" and (frame.shape[0] % 2 or frame.shape[1] % 2):
        raise ExportError(path, "MP4 (yuv420p) needs an even width and height, got"
                                f" {frame.shape[1]}x{frame.shape[0]}")


def write_video(path: str | os.PathLike, frame_iter: Iterable[np.ndarray], fps: float, total_frames: int,
                progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> None:
    """Encode `total_frames` frames from `frame_iter` by the file's extension (.mp4, .gif),
    atomically. `progress(done, total)` after each frame; `cancel()` is checked before each
    frame is asked for and once more just before the finished file is put in place, and when
    true raises Cancelled with no file left. Raises ExportError
    naming the path when the file cannot be written; errors of the frame source pass through."""
    path = Path(path)
    kind = check_target(path, fps)
    if not 1 <= total_frames <= MAX_FRAMES:
        raise ExportError(path, f"the frame count must be within 1..{MAX_FRAMES}, got {total_frames}")
    stream: _Mp4Stream | _GifStream | None = None

    def check(tmp: str) -> None:
        assert stream is not None  # target.commit() checks, and it runs after the stream was made
        stream.check(tmp, total_frames)
        # The last chance to cancel: the encoder finishing and the check take a while after the
        # last frame (the progress shows it done, Cancel still there); a cancel meanwhile must
        # not put the file in place, nor replace the one at the path.
        if cancel is not None and cancel():
            raise Cancelled(f"{path}: export cancelled after all {total_frames} frames were encoded; nothing written")

    with _encoder_errors(path):
        target = AtomicTarget(path, check=check)
    try:
        with _encoder_errors(path):
            stream = _Mp4Stream(target.tmp, fps) if kind == ".mp4" else _GifStream(target.tmp, fps)
        source, first = iter(frame_iter), None
        for done in range(total_frames):
            if cancel is not None and cancel():
                raise Cancelled(f"{path}: export cancelled after {done} of {total_frames} frames; nothing written")
            frame = next(source, None)
            if frame is None:
                raise ExportError(path, f"the frames ran out after {done} of {total_frames}")
            frame = np.asarray(frame)
            _check_frame(path, kind, frame, first)
            first = frame if first is None else first
            with _encoder_errors(path):
                stream.append(frame)
            if progress is not None:
                progress(done + 1, total_frames)
        with _encoder_errors(path):
            stream.close()  # raises if the encoder failed
            target.commit()  # checks the file on disk (size, frame count), then renames it
    except BaseException:
        if stream is not None:
            try:
                stream.abort()
            except Exception:  # noqa: BLE001  the original error is the one to report
                pass
        target.discard()
        raise


@contextmanager
def _encoder_errors(path: Path):
    """Encoder and file-system failures as ExportError naming the target path."""
    try:
        yield
    except (OSError, RuntimeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ExportError(path, f"cannot write the video ({reason})") from exc
