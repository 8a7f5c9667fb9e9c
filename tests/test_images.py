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


# ---------------------------------------------------------------------------------------------
# One decode: EXIF orientation and bit depth (issue 23, failures 5 and 6)
# ---------------------------------------------------------------------------------------------

def exif_jpeg(img: Image.Image, orientation: int) -> bytes:
    """``img``'s pixels stored as they are, with an EXIF Orientation tag (as a phone writes them)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def marked(width: int = 320, height: int = 240) -> Image.Image:
    """Grey with one red block at a known place (x 20..80, y 30..60), so a turn can be followed."""
    img = Image.new("RGB", (width, height), (128, 128, 128))
    img.paste((230, 20, 20), (20, 30, 80, 60))
    return img


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_datasets_applies_it(orientation):
    from datasets import Image as ImageFeature
    import numpy as np

    data = exif_jpeg(marked(), orientation)
    mine, tag = images.decode_oriented(data, "phone.jpg")
    theirs = ImageFeature().decode_example({"bytes": data, "path": None}).convert("RGB")
    assert tag == orientation and mine.size == theirs.size
    assert np.array_equal(np.asarray(mine), np.asarray(theirs))
    swapped = orientation in images.SWAPPING_ORIENTATIONS
    assert mine.size == ((240, 320) if swapped else (320, 240))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_box_follows_the_pixels(orientation):
    """A box around the red block in the raw frame lands on the red block of the upright image."""
    import numpy as np

    from vlir.geometry import orient_box
    from vlir.records import Box

    upright = images.decode_image(exif_jpeg(marked(), orientation), "phone.jpg")
    box = orient_box(Box(20, 30, 80, 60), orientation, 320, 240)
    inside = np.asarray(upright.crop(tuple(round(v) for v in box.as_list())), dtype=float)
    assert inside[..., 0].mean() > 200 and inside[..., 1].mean() < 60  # all red: the block, turned


def test_image_size_reads_the_upright_size_from_the_header(tmp_path):
    (tmp_path / "p.jpg").write_bytes(exif_jpeg(marked(), 6))
    (tmp_path / "q.jpg").write_bytes(exif_jpeg(marked(), 3))
    assert images.image_size(tmp_path / "p.jpg", "p.jpg") == (240, 320)
    assert images.image_size(tmp_path / "q.jpg", "q.jpg") == (320, 240)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_a_16_bit_png_is_mapped_by_range_not_clipped_white():
    """Failure 5: convert("RGB") clipped every 16-bit value to 255, so the whole image was white."""
    import numpy as np

    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    data = _png(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    got = np.asarray(images.decode_image(data, "depth.png"))
    assert got.shape == (16, 256, 3)
    assert got[0, 0, 0] == 0 and got[0, -1, 0] == 255 and abs(int(got[0, 128, 0]) - 128) <= 1
    assert len(np.unique(got[..., 0])) > 200  # a ramp, not a blank


def test_float_and_wide_integer_images_are_mapped_by_their_range():
    import numpy as np

    unit = Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), mode="F")
    got = np.asarray(images.to_8bit(unit))
    assert got.min() == 0 and got.max() == 255
    wide = Image.fromarray(np.linspace(-5e6, 5e6, 64).astype(np.int32).reshape(8, 8), mode="I")
    got = np.asarray(images.to_8bit(wide))
    assert got.min() == 0 and got.max() == 255 and got.dtype == np.uint8
    flat = Image.fromarray(np.full((4, 4), 7.5, dtype=np.float32), mode="F")
    assert np.asarray(images.to_8bit(flat)).max() == 0
    rgb = make_image(8, 8)
    assert images.to_8bit(rgb) is rgb
