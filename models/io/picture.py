"""A picture the user brings (issue 26), read defensively into the generator's square RGB.

What any file becomes: EXIF orientation applied; 16-bit scaled to 8; grayscale, palette and
CMYK converted to RGB; transparency composited over mid-grey (the value the generator's
[-1, 1] range centres on); the centred square crop of the longer side; resized (Lanczos,
with JPEG's draft mode first so a large photo never decodes at full size) to the
generator's resolution. A 1 x 1 picture becomes a flat colour. What is refused, with one
line naming the file: not a file, not an image, truncated, more than MAX_PIXELS pixels
claimed (checked in the header, before anything is decoded: a decompression bomb costs
nothing), more than MAX_FILE_BYTES on disk.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

from models.document.fileio import FileError, FileProblem, read_regular

if TYPE_CHECKING:
    import torch

MAX_FILE_BYTES = 128 << 20
MAX_PIXELS = 40_000_000  # 40 megapixels: any camera's picture; 50,000 x 50,000 is refused
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# The decoders tried, whatever the file's name says: Pillow would otherwise also open EPS by
# running Ghostscript (no timeout: a PostScript loop named .png hung the render worker for good).
# (JPEG's decoder also opens MPO, a camera's multi-picture JPEG.)
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "TIFF", "GIF")


class PictureError(FileError):
    """A picture cannot be used (the message names the file)."""


def read_picture(path: str | os.PathLike, size: int) -> np.ndarray:
    """[size, size, 3] uint8 RGB. PictureError (one line, naming the file) for anything else."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        data = read_regular(path, MAX_FILE_BYTES)
    except FileProblem as exc:
        raise PictureError(path, exc.problem) from None
    if not data:
        raise PictureError(path, "is empty")
    try:
        with warnings.catch_warnings():
            # PIL warns (and raises beyond twice its own limit) on huge claims: ours is below it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
            width, height = img.size
            if width < 1 or height < 1:
                raise PictureError(path, f"claims {width} x {height} pixels")
            if width * height > MAX_PIXELS:
                raise PictureError(path, f"claims {width:,} x {height:,} pixels, more than the"
                                         f" {MAX_PIXELS // 1_000_000} megapixels SteerGAN reads")
            if img.format == "JPEG":
                img.draft("RGB", (max(size, 1) * 2, max(size, 1) * 2))  # decode at 1/2..1/8 scale
            img.load()
            rgb = _to_rgb(ImageOps.exif_transpose(img) or img)
    except PictureError:
        raise
    except UnidentifiedImageError:
        raise PictureError(path, "is not an image SteerGAN can read (PNG, JPEG, WebP, BMP, TIFF, GIF)") from None
    except Image.DecompressionBombError:  # PIL's own check, at open, for the most extreme claims
        raise PictureError(path, f"claims more pixels than the {MAX_PIXELS // 1_000_000} megapixels SteerGAN"
                                 " reads") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise PictureError(path, f"is damaged or truncated ({str(exc)[:100] or type(exc).__name__})") from None
    return _square(rgb, size)


def _to_rgb(img) -> np.ndarray:
    """Any PIL mode -> [H, W, 3] uint8."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = arr if np.isfinite(arr).all() else np.nan_to_num(arr)
        gray = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    # "transparency" in info: a palette's transparent entry, or an RGB/L PNG's colour key (tRNS).
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        grey = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return np.asarray(Image.alpha_composite(grey, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def _square(rgb: np.ndarray, size: int) -> np.ndarray:
    """The centred square crop, resized to size x size (Lanczos)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = Image.fromarray(np.ascontiguousarray(rgb[top:top + side, left:left + side]))
    if side != size:
        crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(crop, dtype=np.uint8).copy()


def picture_tensor(rgb: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [1, 3, H, W] float in [-1, 1] (the generator's range)."""
    import torch  # here: the studio reads SUFFIXES before torch is loaded

    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1.0
