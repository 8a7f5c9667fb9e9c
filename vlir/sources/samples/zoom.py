"""The zoom task's tree for ``vlir sample``: a synthetic source whose answer is legible only in a crop.

Why it exists: the tiny CPU model cannot learn the real sources in minutes, so ``make train`` and
the R-GRPO learning test need a task where (1) the policy can improve within a few dozen CPU steps
and (2) looking helps, which is what R-GRPO is for. Each image (224 x 224) has four small squares,
one per quadrant, in four distinct colours, on a background of dense speckles of the same colours;
the question names a quadrant ("What color is the square at the top left?"). The tiny recipes show
the model a 112 x 112 view (16 vision tokens of 28 x 28 pixels), where a 24-pixel square shrinks to
12 pixels and covers about 5 % of each of the four tokens it straddles, under speckles of every
colour: the full view barely shows it. A look at the square (the grounded annotator pads it to a
~30-pixel box) is cropped from the 224-pixel original and zoomed to 56 x 56, where the square fills
most of its four tokens.

Layout (the tree ``vlir build --source zoom`` reads; there is no official download):

- ``{train,val}.jsonl``: one JSON object per line with ``question_id``, ``image`` (path under the
  root), ``question``, ``answer`` (a colour name), ``quadrant`` and ``square`` (the asked square's
  pixel box ``[x1, y1, x2, y2]``: the evidence).
- ``images/{split}/{question_id}.png``.

Deterministic per seed: a question's image depends only on (seed, split, index).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Mapping

from PIL import Image, ImageDraw

from vlir.records import Box
from vlir.sources.samples.synth import save_image

SIZE = 224  # the original; the tiny recipes' model view is half of it (max_pixels = 16 tokens)
SQUARE = 24  # side of a target square, pixels
SPECKLE = 4  # side of a background speckle, pixels
SPECKLE_DENSITY = 0.35  # fraction of the background covered by speckles
COLORS = {"red": (210, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 210), "yellow": (235, 205, 30)}
QUADRANTS = {"top left": (0, 0), "top right": (1, 0), "bottom left": (0, 1), "bottom right": (1, 1)}
SPLITS = ("train", "val")


def square_box(quadrant: str) -> Box:
    """The target square of a quadrant: centred in it (fixed, so the box follows from the question)."""
    qx, qy = QUADRANTS[quadrant]
    cx, cy = SIZE // 4 + qx * SIZE // 2, SIZE // 4 + qy * SIZE // 2
    half = SQUARE // 2
    return Box(cx - half, cy - half, cx + half, cy + half)


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


def make_question(index: int, split: str, seed: int) -> tuple[Image.Image, dict]:
    """The image and the jsonl line of one question."""
    rng = random.Random(f"vlir-zoom/{seed}/{split}/{index}")
    image, colours = draw_image(rng)
    quadrant = rng.choice(list(QUADRANTS))
    qid = f"{index:05d}"
    line = {"question_id": qid, "image": f"images/{split}/{qid}.png",
            "question": f"What color is the square at the {quadrant}?", "answer": colours[quadrant],
            "quadrant": quadrant, "square": square_box(quadrant).as_list()}
    return image, line


def write_zoom_tree(out: Path, per_split: int | Mapping[str, int], seed: int) -> None:
    """Write the tree under ``out``: ``per_split`` questions in each of train and val (or a
    ``{split: count}`` mapping, e.g. many SFT questions and fewer RL prompts)."""
    counts = per_split if isinstance(per_split, Mapping) else {s: per_split for s in SPLITS}
    out = Path(out)
    for split, n in counts.items():
        if split not in SPLITS:
            raise ValueError(f"zoom has splits {', '.join(SPLITS)}, not {split!r}")
        lines = []
        for i in range(int(n)):
            image, line = make_question(i, split, seed)
            save_image(image, out / line["image"], "PNG")
            lines.append(json.dumps(line))
        (out / f"{split}.jsonl").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
