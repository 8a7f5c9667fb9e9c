"""The zoom task: a synthetic VLIR corpus whose answer is only legible after cropping the right region.

Why it exists: the tiny CPU model cannot learn the real sources in minutes, so ``make train`` and
the R-GRPO learning test need a task where (1) the policy can improve within a few dozen CPU steps
and (2) looking helps, which is what R-GRPO is for. Each image (112 x 112, the model sees 16 vision
tokens of 28 x 28 pixels) has four small squares, one per quadrant, in four distinct colours, on a
background of dense speckles of the same colours. The question names a quadrant ("What color is
the square at the top left?"). A 12-pixel square covers about 5 % of each of the four vision tokens
it straddles, under speckles of every colour, so the full view barely shows it; a crop of the
square's 16-pixel box is zoomed to 56 x 56 pixels, where the square fills most of its four tokens.

The records are ordinary VLIR records (source ``zoom``, exact-match metric, the square as an
``object`` evidence region), written as a corpus folder that :class:`vlir.train.data.SFTDataset`
and :func:`vlir.train.rl_data.build_rl_set` read like a built one (images embedded):

* split ``train``: SFT warm-start chains. A fraction ``look_fraction`` of them crops the square,
  then names the colour; the rest name the colour from the full view. SFT thus teaches the format
  and both behaviours, with correct answers in both; R-GRPO must find out which one pays.
* split ``rl``: disjoint prompts for R-GRPO (their chains are never shown to the policy).

    python -m vlir.sources.zoom --out out/zoom [--train 600 --rl 256 --look-fraction 0.8 --seed 0]

writes ``out/zoom/corpus`` (SFT data) and ``out/zoom/rl`` (the RL set). Deterministic per seed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw

from vlir.crops import encode_png, render_crop
from vlir.images import sha256_hex
from vlir.records import Box, Chain, Look, Provenance, Record, Region, Sample, Think
from vlir.corpus.shards import MANIFEST, atomic_write_json, shard_name, write_records

SOURCE = "zoom"
SIZE = 112  # within the tiny model's pixel budget: the model sees it unresized (8 x 8 patches of 14)
SQUARE = 12  # side of a target square, pixels
MARGIN = 0  # the look box is the square itself: its crop is nearly one colour
SPECKLE = 2  # side of a background speckle, pixels
SPECKLE_DENSITY = 0.35  # fraction of the background covered by speckles
COLORS = {"red": (210, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 210), "yellow": (235, 205, 30)}
QUADRANTS = {"top left": (0, 0), "top right": (1, 0), "bottom left": (0, 1), "bottom right": (1, 1)}


def square_box(quadrant: str) -> Box:
    """The target square of a quadrant: centred in it (fixed, so the box follows from the question)."""
    qx, qy = QUADRANTS[quadrant]
    cx, cy = SIZE // 4 + qx * SIZE // 2, SIZE // 4 + qy * SIZE // 2
    half = SQUARE // 2
    return Box(cx - half, cy - half, cx + half, cy + half)


def look_box(quadrant: str) -> Box:
    b = square_box(quadrant)
    return Box(b.x1 - MARGIN, b.y1 - MARGIN, b.x2 + MARGIN, b.y2 + MARGIN)


def draw_image(rng: random.Random) -> tuple[Image.Image, dict[str, str]]:
    """A speckled background and one square per quadrant; returns the image and quadrant -> colour."""
    img = Image.new("RGB", (SIZE, SIZE), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    palette = list(COLORS.values())
    for _ in range(int(SPECKLE_DENSITY * SIZE * SIZE / SPECKLE ** 2)):
        x, y = rng.randrange(SIZE - SPECKLE + 1), rng.randrange(SIZE - SPECKLE + 1)
        draw.rectangle([x, y, x + SPECKLE - 1, y + SPECKLE - 1], fill=rng.choice(palette))
    names = list(COLORS)
    rng.shuffle(names)
    colours = dict(zip(QUADRANTS, names))
    for quadrant, name in colours.items():
        b = square_box(quadrant)
        draw.rectangle([b.x1, b.y1, b.x2 - 1, b.y2 - 1], fill=COLORS[name])
    return img, colours


def make_record(index: int, split: str, seed: int, look: bool) -> Record:
    """One zoom record; ``look`` chooses the chain that crops the square first."""
    rng = random.Random(f"{seed}:{split}:{index}")
    image, colours = draw_image(rng)
    quadrant = rng.choice(list(QUADRANTS))
    answer = colours[quadrant]
    png = encode_png(image)
    sample = Sample(id=f"{SOURCE}/{split}/{index}", source=SOURCE, split=split, image=f"images/{split}/{index}.png",
                    width=SIZE, height=SIZE, question=f"What color is the square at the {quadrant}?",
                    answers=(answer,), evidence=(Region(square_box(quadrant), f"{answer} square", "object"),),
                    meta={"quadrant": quadrant})
    intro = Think(f"The square at the {quadrant}.")
    steps = [intro, Look(look_box(quadrant), f"{answer} square"), Think(f"It is {answer}.")] if look \
        else [intro, Think(f"It is {answer}.")]
    crops = tuple(render_crop(image, s.box) for s in steps if isinstance(s, Look))
    return Record(sample, Chain(steps, answer), Provenance("zoom-synthetic", "0.1.0"), crops=crops,
                  image_sha256=sha256_hex(png), image_bytes=png)


def write_corpus(out: str | Path, train: int = 600, rl: int = 256, look_fraction: float = 0.8,
                 seed: int = 0) -> dict:
    """Write ``out/corpus`` (splits ``train`` and ``rl``, a manifest the corpus readers accept) and
    ``out/rl`` (the RL set, via :func:`vlir.train.rl_data.build_rl_set`). Returns the manifest."""
    from vlir.train.rl_data import build_rl_set

    if not 0.0 <= look_fraction <= 1.0:
        raise ValueError(f"look_fraction must be in [0, 1], got {look_fraction}")
    if train < 1 or rl < 1:
        raise ValueError(f"need at least one train and one rl record, got train={train} rl={rl}")
    out = Path(out)
    corpus = out / "corpus"
    pick = random.Random(f"{seed}:look")
    counts = {}
    for split, n in (("train", train), ("rl", rl)):
        rows = [make_record(i, split, seed, look=split == "train" and pick.random() < look_fraction)
                for i in range(n)]
        write_records(corpus / SOURCE / split / shard_name("part", 0), rows)
        counts[split] = {"records": n, "with_look": sum(bool(r.crops) for r in rows)}
    manifest = {"kind": "vlir-zoom-task", "seed": seed, "look_fraction": look_fraction, "counts": counts,
                "splits": {f"{SOURCE}/{s}": {"source": SOURCE, "split": s} for s in counts}, "roots": {}}
    atomic_write_json(corpus / MANIFEST, manifest)
    build_rl_set(corpus, out / "rl", quotas={SOURCE: rl}, seed=seed, split="rl")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlir.sources.zoom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for corpus/ (SFT data) and rl/ (the RL set)")
    parser.add_argument("--train", type=int, default=600, help="SFT records")
    parser.add_argument("--rl", type=int, default=256, help="RL prompts")
    parser.add_argument("--look-fraction", type=float, default=0.8, help="share of SFT chains that crop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        manifest = write_corpus(args.out, args.train, args.rl, args.look_fraction, args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(manifest["counts"]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
