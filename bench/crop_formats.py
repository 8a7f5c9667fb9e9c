"""What crop bytes cost: PNG at several compress levels, lossless WebP, and crops by reference.

Half of a build's floor is PNG-encoding crops (bench/build_throughput.py's profile). The options:

* ``png6``: today's default (:func:`vlir.crops.encode_png`, compress_level 6);
* ``png1`` / ``png3`` / ``png9``: other zlib levels (same pixels, other bytes and speed);
* ``webp``: lossless WebP (Pillow's libwebp, method 0 = its fastest and 4 = its default);
* ``ref``: no bytes: the record keeps the box and the crop rule's version; a loader re-renders
  the crop from the original (cut + LANCZOS resize, :func:`vlir.crops.render_crop`'s steps) and
  checks it against a stored SHA-256 of the pixels. Its build cost is that hash; its load cost is
  the re-render (SFT decodes the original anyway, for the first turn) plus, where nothing else
  decodes the original (a ``datasets`` viewer), the original's decode.

For a TextVQA-like tree (bench/build_throughput.py's images, 640x480..1024x768 JPEGs) and the
grounded chains' boxes, each side handles every crop once per round; after a warm-up round,
``--pairs`` interleaved rounds (bench/_timing.py) of CPU time (process time, less sensitive to the
shared CPU than wall time). Prints per format: encode ms/crop, bytes/crop, decode ms/crop (and
for ``ref`` the re-render with and without the original's decode). The last line, also written
to out/bench/crop_formats.json, is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402
from build_throughput import make_tree  # noqa: E402

from vlir import geometry  # noqa: E402
from vlir.crops import pixel_window, zoom_scale  # noqa: E402
from vlir.geometry import CROP_PIXELS  # noqa: E402
from vlir.records import Box  # noqa: E402

ENCODERS = {
    "png6": lambda im: _save(im, format="PNG", compress_level=6, optimize=False),
    "png1": lambda im: _save(im, format="PNG", compress_level=1, optimize=False),
    "png3": lambda im: _save(im, format="PNG", compress_level=3, optimize=False),
    "png9": lambda im: _save(im, format="PNG", compress_level=9, optimize=False),
    "webp_m0": lambda im: _save(im, format="WEBP", lossless=True, method=0, exact=True),
    "webp_m4": lambda im: _save(im, format="WEBP", lossless=True, method=4, exact=True),
    "ref": lambda im: hashlib.sha256(im.tobytes()).digest(),
}


def _save(image: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, **kwargs)
    return buf.getvalue()


def _cut(image: Image.Image, box: Box) -> Image.Image:
    """render_crop's pixels, without its encode (vlir.crops.render_crop, step for step)."""
    width, height = image.size
    x1, y1, x2, y2 = pixel_window(box, width, height)
    scale = zoom_scale(((x2 - x1) * (y2 - y1)) / (width * height))
    th, tw = geometry.smart_resize(max(1, int(scale * (y2 - y1))), max(1, int(scale * (x2 - x1))), CROP_PIXELS)
    return image.crop((x1, y1, x2, y2)).resize((tw, th), Image.Resampling.LANCZOS)


def crops_of(root: Path, n: int, seed: int = 0) -> list[tuple[Path, Box]]:
    """n (image, box) pairs: boxes of the sizes the grounded chains cut (a word to a quarter image)."""
    rng = random.Random(seed)
    images = sorted((root / "train_images").glob("*.jpg"))
    out = []
    for i in range(n):
        path = images[i % len(images)]
        with Image.open(path) as im:
            w, h = im.size
        bw, bh = rng.uniform(0.08, 0.5) * w, rng.uniform(0.05, 0.4) * h
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        out.append((path, Box(x, y, x + bw, y + bh)))
    return out


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crops", type=int, default=150)
    parser.add_argument("--pairs", type=int, default=T.MIN_PAIRS)
    args = parser.parse_args()
    T.header("crop_formats", args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        make_tree(Path(tmp), 10)
        pairs = crops_of(Path(tmp), args.crops)
        originals = {p: Image.open(p).convert("RGB") for p in {p for p, _ in pairs}}
        jpegs = {p: p.read_bytes() for p in originals}
        zoomed = [_cut(originals[p], box) for p, box in pairs]
        encoded = {name: [enc(im) for im in zoomed] for name, enc in ENCODERS.items()}
        for name in ("png1", "png3", "png9", "webp_m0", "webp_m4"):  # lossless: the same pixels back
            assert all(Image.open(io.BytesIO(b)).convert("RGB").tobytes() == im.tobytes()
                       for b, im in zip(encoded[name], zoomed)), name

        def encode_side(name):
            return lambda: [ENCODERS[name](im) for im in zoomed]

        def decode_side(name):
            return lambda: [Image.open(io.BytesIO(b)).convert("RGB").load() for b in encoded[name]]

        def rerender(with_original: bool):
            def run():
                for (path, box), digest in zip(pairs, encoded["ref"]):
                    image = (Image.open(io.BytesIO(jpegs[path])).convert("RGB") if with_original
                             else originals[path])
                    assert hashlib.sha256(_cut(image, box).tobytes()).digest() == digest
            return run

        sides = {f"encode_{n}": encode_side(n) for n in ENCODERS}
        sides.update({f"decode_{n}": decode_side(n) for n in ENCODERS if n != "ref"})
        sides["decode_ref_sft"] = rerender(False)  # SFT has the original decoded already
        sides["decode_ref_alone"] = rerender(True)  # a datasets viewer decodes the original too
        rounds = T.interleaved(sides, args.pairs, measure=lambda _n, fn: cpu(fn))
    n = len(pairs)
    result = {"crops": n, "pairs": args.pairs, "formats": {}}
    base = rounds["encode_png6"]
    print(f"{n} crops (640x480..1024x768 originals); CPU ms per crop, median (min, max):")
    for name in ENCODERS:
        dec = rounds.get(f"decode_{name}") or rounds["decode_ref_sft"]
        entry = {"encode_ms": T.spread([1000 * s / n for s in rounds[f"encode_{name}"]], 3),
                 "bytes_per_crop": round(sum(len(b) for b in encoded[name]) / n),
                 "encode_vs_png6": T.pairwise_ratio(rounds[f"encode_{name}"], base, 3),
                 "decode_ms": T.spread([1000 * s / n for s in dec], 3)}
        if name == "ref":
            entry["decode_ms_with_original"] = T.spread([1000 * s / n for s in rounds["decode_ref_alone"]], 3)
        result["formats"][name] = entry
        print(f"  {name:8s} encode {T.fmt(entry['encode_ms'], ' ms', digits=2)} "
              f"(x{entry['encode_vs_png6']['median']:.2f} of png6), {entry['bytes_per_crop']} B/crop, "
              f"load {T.fmt(entry['decode_ms'], ' ms', digits=2)}"
              + (f"; load without a decoded original {T.fmt(entry['decode_ms_with_original'], ' ms', digits=2)}"
                 if name == "ref" else ""))
    T.write_result("crop_formats", result)


if __name__ == "__main__":
    main()
