"""Pictures the user brings (issue 26, "Bad input"): each kind either fits, converted as the
module says, or is one PictureError naming the file; none takes unbounded memory."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from models.io.picture import PictureError, picture_tensor, read_picture


def save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


def halves(w=40, h=40) -> Image.Image:
    """Left half red, right half blue."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2, 0] = 255
    arr[:, w // 2:, 2] = 255
    return Image.fromarray(arr)


def test_an_rgb_png_is_resized_to_the_generators_side(tmp_path):
    out = read_picture(save(tmp_path, "a.png", halves()), 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert out[8, 2, 0] > 200 and out[8, 13, 2] > 200  # red left, blue right


def test_non_square_pictures_are_cropped_to_their_centred_square(tmp_path):
    arr = np.zeros((20, 60, 3), np.uint8)
    arr[:, 20:40] = 255  # the middle third white: the centred square is all white
    out = read_picture(save(tmp_path, "wide.png", Image.fromarray(arr)), 8)
    assert out.min() > 240


def test_grayscale_16_bit_palette_and_cmyk_become_rgb(tmp_path):
    gray = Image.fromarray(np.full((10, 10), 200, np.uint8))
    assert read_picture(save(tmp_path, "g.png", gray), 4)[0, 0].tolist() == [200, 200, 200]
    deep = Image.fromarray(np.full((10, 10), 65535 // 2, np.uint16))
    value = read_picture(save(tmp_path, "d.png", deep), 4)[0, 0]
    assert abs(int(value[0]) - 127) <= 1 and len(set(value.tolist())) == 1
    pal = halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert read_picture(save(tmp_path, "p.png", pal), 8)[4, 1, 0] > 200
    cmyk = halves().convert("CMYK")
    out = read_picture(save(tmp_path, "c.jpg", cmyk), 8)
    assert out[4, 1, 0] > 180 and out[4, 6, 2] > 180


def test_transparency_is_composited_over_mid_grey(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    assert read_picture(save(tmp_path, "t.png", rgba), 8)[3, 3].tolist() == [128, 128, 128]


def test_an_rgb_pngs_colour_key_is_transparent_too(tmp_path):
    red = Image.new("RGB", (8, 8), (255, 0, 0))  # red marked transparent by a tRNS chunk
    assert read_picture(save(tmp_path, "key.png", red, transparency=(255, 0, 0)), 8)[3, 3].tolist() == [128] * 3


def test_a_postscript_file_named_png_is_refused_without_running_ghostscript(tmp_path, monkeypatch):
    """Pillow opens EPS by running Ghostscript (no timeout: a PostScript loop hung the render
    worker); only the decoders of the formats SteerGAN reads are tried."""
    import subprocess

    def no_ghostscript(*args, **kwargs):
        raise AssertionError(f"ran {args[0]!r}")

    monkeypatch.setattr(subprocess, "Popen", no_ghostscript)
    monkeypatch.setattr(subprocess, "check_call", no_ghostscript)
    path = tmp_path / "drawing.png"
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nnewpath 0 0 moveto 16 16 lineto stroke\n")
    with pytest.raises(PictureError, match="drawing.png.*not an image"):
        read_picture(path, 8)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees: what is stored on the left is shown on the right
    path = tmp_path / "r.jpg"
    halves().save(path, exif=exif, quality=95)
    out = read_picture(path, 8)
    assert out[4, 6, 0] > 180 and out[4, 1, 2] > 180


def test_a_one_pixel_picture_becomes_a_flat_colour(tmp_path):
    out = read_picture(save(tmp_path, "one.png", Image.new("RGB", (1, 1), (10, 200, 30))), 8)
    assert (out == np.array([10, 200, 30], np.uint8)).all()


def _png(width, height, payload=b"\x00" * 10) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(payload)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name, data, words", [
    ("notes.png", b"these are my notes, not a picture", "not an image"),
    ("empty.jpg", b"", "empty"),
    ("bomb.png", _png(50_000, 50_000), "megapixels"),
    ("cut.png", None, "damaged or truncated"),
])
def test_bad_files_are_one_line_naming_them(tmp_path, name, data, words):
    path = tmp_path / name
    if data is None:  # a real PNG with its second half cut off
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
        data = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(data)
    with pytest.raises(PictureError) as err:
        read_picture(path, 16)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message


def test_a_folder_or_missing_file_is_refused(tmp_path):
    for path in (tmp_path, tmp_path / "nothing.png"):
        with pytest.raises(PictureError, match=str(path.name)):
            read_picture(path, 8)


def test_picture_tensor_is_in_the_generators_range():
    t = picture_tensor(np.array([[[0, 255, 127]]], np.uint8))
    assert t.shape == (1, 3, 1, 1) and t.min() == -1 and t.max() == 1
