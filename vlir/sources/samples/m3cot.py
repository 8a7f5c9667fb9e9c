"""The M3CoT miniature for ``vlir sample``: the Hugging Face release's Parquet layout.

Writes ``data/train-00000-of-00001.parquet`` and ``data/validation-00000-of-00001.parquet`` with the
release's columns, the ``image`` column as ``{bytes, path}`` PNG structs and the ``huggingface``
schema metadata that ``datasets`` writes (so ``load_dataset("parquet", ...)`` decodes the images).
Each image is a chart panel of labelled, coloured bars; each question is multiple choice and its
answer letter, rationale and choices are read off the panel.
"""

from __future__ import annotations

import io
import json
import random
import string
from pathlib import Path
from typing import Any

from vlir.sources.samples.synth import COLORS, canvas, draw_text, text_size

ITEMS = ("oak", "pine", "maple", "birch", "cedar", "elm", "willow", "ash")
BAR_COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "brown")
FEATURES = {
    "id": {"dtype": "string", "_type": "Value"}, "category": {"dtype": "string", "_type": "Value"},
    "image_id": {"dtype": "string", "_type": "Value"}, "question": {"dtype": "string", "_type": "Value"},
    "choices": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
    "context": {"dtype": "string", "_type": "Value"}, "answer": {"dtype": "string", "_type": "Value"},
    "rationale": {"dtype": "string", "_type": "Value"}, "split": {"dtype": "string", "_type": "Value"},
    "image": {"_type": "Image"}, "domain": {"dtype": "string", "_type": "Value"},
    "topic": {"dtype": "string", "_type": "Value"},
}


def draw_panel(rng: random.Random) -> tuple[bytes, list[dict[str, Any]]]:
    """A bar chart panel: 3-5 bars with distinct heights, colours and labels. Returns PNG bytes
    and the bars (label, colour, value)."""
    n = rng.randint(3, 5)
    labels, colors = rng.sample(ITEMS, n), rng.sample(BAR_COLORS, n)
    values = rng.sample(range(2, 10), n)
    width, height = 120 + 90 * n, 320
    img, draw = canvas(width, height, (250, 250, 245))
    draw_text(draw, (16, 10), "Tree heights (m)", 16)
    base, unit = height - 40, 24
    draw.line([(40, base), (width - 20, base)], fill=(0, 0, 0), width=2)
    bars = []
    for i, (label, color, value) in enumerate(zip(labels, colors, values)):
        x = 60 + 90 * i
        draw.rectangle([x, base - value * unit, x + 59, base - 1], fill=COLORS[color], outline=(0, 0, 0))
        tw, _ = text_size(label, 14)
        draw_text(draw, (x + (60 - tw) // 2, base + 8), label, 14)
        draw_text(draw, (x + 22, base - value * unit - 20), str(value), 14)
        bars.append({"label": label, "color": color, "value": value})
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue(), bars


def _question(rng: random.Random, bars: list[dict[str, Any]], turn: int) -> dict[str, Any]:
    """One of three question kinds, each answered by the drawn bars."""
    kind = turn % 3
    if kind == 0:
        top = max(bars, key=lambda b: b["value"])
        choices = [b["label"] for b in bars]
        rng.shuffle(choices)
        answer = choices.index(top["label"])
        return {"question": "Which tree in the chart is the tallest?", "choices": choices,
                "answer": answer, "category": "Chart Reading",
                "rationale": f"The {top['label']} bar is the highest, at {top['value']} m. "
                             f"So the answer is ({string.ascii_uppercase[answer]})."}
    bar = rng.choice(bars)
    if kind == 1:
        choices = rng.sample([c for c in BAR_COLORS if c != bar["color"]], 3) + [bar["color"]]
        rng.shuffle(choices)
        answer = choices.index(bar["color"])
        return {"question": f"What color is the bar of the {bar['label']}?", "choices": choices,
                "answer": answer, "category": "Chart Reading",
                "rationale": f"The bar labelled {bar['label']} is filled {bar['color']}. "
                             f"So the answer is ({string.ascii_uppercase[answer]})."}
    taller = sum(b["value"] > bar["value"] for b in bars)
    choices = [str(v) for v in range(len(bars))]
    answer = choices.index(str(taller))
    return {"question": f"How many trees are taller than the {bar['label']}?", "choices": choices,
            "answer": answer, "category": "Counting",
            "rationale": f"The {bar['label']} is {bar['value']} m; {taller} bar(s) are higher. "
                         f"So the answer is ({string.ascii_uppercase[answer]})."}


def write_m3cot_tree(out: Path, per_split: int, seed: int) -> None:
    """Write ``per_split`` questions for each of train and validation under ``out/data``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("id", pa.string()), ("category", pa.string()), ("image_id", pa.string()),
        ("question", pa.string()), ("choices", pa.list_(pa.string())), ("context", pa.string()),
        ("answer", pa.string()), ("rationale", pa.string()), ("split", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("domain", pa.string()), ("topic", pa.string()),
    ], metadata={"huggingface": json.dumps({"info": {"features": FEATURES}})})
    for s, split in enumerate(("train", "validation")):
        rng = random.Random(f"vlir-m3cot/{seed}/{split}")
        rows = []
        for i in range(per_split):
            png, bars = draw_panel(rng)
            q = _question(rng, bars, i + s)
            image_id = str(7000 + 1000 * s + i)
            rows.append({
                "id": f"natural-science-{7000 + 1000 * s + i}", "category": q["category"],
                "image_id": image_id, "question": q["question"], "choices": q["choices"],
                "context": "" if i % 2 else "The chart shows the heights of trees in a park.",
                "answer": string.ascii_uppercase[q["answer"]], "rationale": q["rationale"], "split": split,
                "image": {"bytes": png, "path": f"{image_id}.png"},
                "domain": "science", "topic": "natural-science",
            })
        path = out / "data" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
