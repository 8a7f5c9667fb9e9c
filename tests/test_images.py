import io
import struct
import zlib

import pytest
from PIL import Image

from vlir import images
from tests.conftest import make_image


def _jpeg(img):
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def test_safe_path_refuses_escapes(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert images.safe_path(tmp_path, "a.jpg") == (tmp_path / "a.jpg").resolve()
    for bad in ("../etc/passwd", "/etc/passwd", "sub/../../x.jpg", ""):
        with pytest.raises(images.ImageError) as e:
            images.safe_path(tmp_path, bad)
        assert e.value.reason == "unsafe_path"


@pytest.mark.parametrize("data,reason", [
    (b"this is not an image", "not_an_image"),
    (None, "corrupt_image"),  # truncated JPEG
])
def test_bad_image_bytes(data, reason):
    if data is None:
        data = _jpeg(make_image(400, 300))[:600]
    with pytest.raises(images.ImageError) as e:
        images.decode_image(data, "x.jpg")
    assert e.value.reason == reason


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header declares width x height pixels (IHDR patched, CRC fixed)."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr:ihdr + 17]))
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(images.ImageError) as e:
        images.decode_image(bomb_png(), "bomb.png")
    assert e.value.reason == "image_too_large"


def test_missing_file(tmp_path):
    with pytest.raises(images.ImageError) as e:
        images.load_image(tmp_path / "nope.jpg")
    assert e.value.reason == "missing_image"


def test_grayscale_becomes_rgb():
    buf = io.BytesIO()
    Image.new("L", (30, 20), 128).save(buf, format="PNG")
    assert images.decode_image(buf.getvalue(), "g.png").mode == "RGB"


def test_nul_byte_and_fifo_paths(tmp_path):
    """Issue 13: a NUL byte is an ImageError (not ``ValueError: embedded null byte``), and a FIFO
    named .png is "not a regular file" (reading it would block), not "not found"."""
    import os

    from vlir.images import ImageError, read_image_bytes, safe_path

    with pytest.raises(ImageError, match="NUL byte") as exc:
        safe_path(tmp_path, "images/a\x00.png")
    assert exc.value.reason == "unsafe_path"
    os.mkfifo(tmp_path / "fifo.png")
    with pytest.raises(ImageError, match="fifo.png is not a regular file") as exc:
        read_image_bytes(tmp_path / "fifo.png", "fifo.png")
    assert exc.value.reason == "unreadable_image"
    with pytest.raises(ImageError, match="not found: gone.png"):
        read_image_bytes(tmp_path / "gone.png", "gone.png")
