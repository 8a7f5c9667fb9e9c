"""The InfographicsVQA sample tree: tall infographic panels with Amazon Textract OCR.

Written in the RRC archive layout (``infographicsvqa_qas/``, ``infographicsvqa_images/*.jpeg``,
``infographicsvqa_ocr/*.json``). Each image has a title banner, stacked panels each with a heading,
a big figure ("45%", "1,250") and a caption, and a source line. The Textract file has the real
file's shape: top-level ``PAGE``/``LINE``/``WORD`` block lists, each block with BlockType,
Confidence, Text, Geometry (BoundingBox and Polygon as fractions of the page), Id and CHILD
Relationships. Quirks: one grayscale JPEG, one image whose OCR is empty, multi-word answers.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from vlir.records import Box
from vlir.sources.samples import synth
from vlir.sources.samples.synth import draw_words, dump_json

WIDTH = 600
PANEL_COLORS = ("blue", "green", "orange", "purple", "red", "brown")
TOPICS = ("COFFEE", "MUSIC", "LIBRARY", "TRAVEL", "BAKERY", "MUSEUM", "HOTEL", "GARDEN")
CAPTIONS = ("of people visit every week", "of visitors come by train", "of staff work remotely",
            "of sales happen online", "of readers prefer print", "of tickets sold in summer")
HEADINGS = ("North", "Central", "Harbor", "Royal", "Golden", "Silver", "Grand", "River")
SOURCES = ("North Research", "Central Office", "Golden Press", "Royal Survey")


def write_tree(out: Path, per_split: int, seed: int) -> None:
    rng = random.Random(f"infographicsvqa:{seed}")
    qid, image_no = 65000, 30000
    files = {"train": "infographicsVQA_train_v1.0.json", "val": "infographicsVQA_val_v1.0_withQT.json"}
    for split in ("train", "val"):
        n_images = max(1, (per_split + 1) // 2)
        pictures = []
        for i in range(n_images):
            image_no += rng.randint(1, 300)
            img, lines, facts = _draw(rng)
            gray = split == "train" and i == 0
            synth.save_image(img.convert("L") if gray else img,
                             out / "infographicsvqa_images" / f"{image_no}.jpeg", "JPEG")
            empty = split == "val" and i == n_images - 1
            dump_json(out / "infographicsvqa_ocr" / f"{image_no}.json",
                      _textract(rng, [] if empty else lines, img.size))
            pictures.append((image_no, facts))
        records = []
        for q in range(per_split):
            number, facts = pictures[q // 2]
            kinds = _questions(facts)
            question, golds, answer_type, evidence = kinds[(q + q // 2) % len(kinds)]
            records.append({
                "questionId": qid, "question": question, "image_local_name": f"{number}.jpeg",
                "image_url": f"https://example.org/infographics/{number}.jpeg",
                "ocr_output_file": f"{number}.json", "answers": golds, "data_split": split,
                "answer_type": answer_type, "evidence": evidence, "operation/reasoning": [],
            })
            qid += rng.randint(1, 7)
        dump_json(out / "infographicsvqa_qas" / files[split], {
            "dataset_name": "infographicVQA", "dataset_version": "1.0", "dataset_split": split,
            "data": records})


def _draw(rng: random.Random) -> tuple[Image.Image, list[list[tuple[str, Box]]], dict[str, Any]]:
    """Title banner, 3-4 panels (heading, big figure, caption), source line. Returns the image,
    the text lines (each a list of (word, ink box)) and the facts the questions ask about."""
    n_panels = rng.choice((3, 4))
    height = 150 + n_panels * 190 + 60
    img = Image.new("RGB", (WIDTH, height), (250, 248, 240))
    draw = ImageDraw.Draw(img)
    topic = rng.choice(TOPICS)
    title = f"{topic} IN {rng.randint(2010, 2023)}"
    draw.rectangle([0, 0, WIDTH, 120], fill=(30, 40, 80))
    tw = synth.text_size(title, 40)[0]
    lines = [draw_words(draw, ((WIDTH - tw) / 2, 38), title.split(), 40, (255, 255, 255))]
    panels = []
    for k, (color, heading, caption) in enumerate(zip(rng.sample(PANEL_COLORS, n_panels),
                                                      rng.sample(HEADINGS, n_panels),
                                                      rng.sample(CAPTIONS, n_panels))):
        top = 150 + k * 190
        draw.rectangle([30, top, WIDTH - 30, top + 165], fill=synth.COLORS[color])
        figure = f"{rng.randint(5, 95)}%" if rng.random() < 0.6 else f"{rng.randint(11, 99) * 50:,}"
        lines.append(draw_words(draw, (50, top + 14), [heading, "Region"], 24, (255, 255, 255)))
        lines.append(draw_words(draw, (50, top + 50), [figure], 64, (255, 255, 255)))
        lines.append(draw_words(draw, (50, top + 128), caption.split(), 20, (255, 255, 255)))
        panels.append({"heading": f"{heading} Region", "figure": figure, "caption": caption})
    source = rng.choice(SOURCES)
    lines.append(draw_words(draw, (30, height - 45), ["Source:", *source.split()], 16, (60, 60, 60)))
    return img, lines, {"title": title, "panels": panels, "source": source}


def _questions(facts: dict[str, Any]) -> list[tuple[str, list[str], list[str], list[str]]]:
    first, last = facts["panels"][0], facts["panels"][-1]
    return [
        ("What is the title of this infographic?", [facts["title"], facts["title"].lower()],
         ["single span"], ["Text"]),
        (f"What figure is shown for the {first['heading']}?", [first["figure"]],
         ["single span"], ["Figure", "Text"]),
        ("Who is the source of the data?", [facts["source"]], ["single span"], ["Text"]),
        (f'Which figure goes with the caption "{last["caption"]}"?', [last["figure"]],
         ["single span"], ["Text"]),
    ]


def _textract(rng: random.Random, lines: list[list[tuple[str, Box]]],
              size: tuple[int, int]) -> dict[str, Any]:
    """Textract blocks for ``lines``: fractions of the page, ids as UUIDs, CHILD relationships."""
    w, h = size

    def block(kind: str, text: str | None, box: Box, children: list[str] | None) -> dict[str, Any]:
        left, top, right, bottom = box.x1 / w, box.y1 / h, box.x2 / w, box.y2 / h
        out: dict[str, Any] = {"BlockType": kind}
        if text is not None:
            out["Confidence"] = round(rng.uniform(90.0, 99.9), 4)
            out["Text"] = text
        out["Geometry"] = {
            "BoundingBox": {"Width": right - left, "Height": bottom - top, "Left": left, "Top": top},
            "Polygon": [{"X": left, "Y": top}, {"X": right, "Y": top}, {"X": right, "Y": bottom},
                        {"X": left, "Y": bottom}],
        }
        out["Id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if children:
            out["Relationships"] = [{"Type": "CHILD", "Ids": children}]
        return out

    line_blocks, word_blocks = [], []
    for words in lines:
        ids = []
        for word, box in words:
            word_blocks.append(block("WORD", word, box, None))
            ids.append(word_blocks[-1]["Id"])
        hull = Box(min(b.x1 for _, b in words), min(b.y1 for _, b in words),
                   max(b.x2 for _, b in words), max(b.y2 for _, b in words))
        line_blocks.append(block("LINE", " ".join(word for word, _ in words), hull, ids))
    page = block("PAGE", None, Box(0, 0, w, h), [b["Id"] for b in line_blocks])
    return {"PAGE": [page], "LINE": line_blocks, "WORD": word_blocks}
