"""The DocVQA sample tree: letter-like document pages with Microsoft Read v2 OCR.

Written in the 2020 release's per-split layout (``<split>/<split>_v1.0_withQT.json``,
``<split>/documents/*.png``, ``<split>/ocr_results/*.json``). Every OCR box is the ink box of the
word as drawn, and every answer is text on the page. Quirks of the real data reproduced here: most
pages are grayscale PNGs (one has a colour letterhead), one page carries an upside-down stamp
(Read v2 then lists the polygon from the text's own top-left, i.e. the page's bottom-right), one
page has empty OCR, and several answers are multi-word lines.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from vlir.records import Box
from vlir.sources.samples import synth
from vlir.sources.samples.synth import draw_words, dump_json

PAGE = (760, 980)
MARGIN = 60
ORGS = ("GOLDEN RESEARCH INSTITUTE", "ROYAL TOBACCO COMPANY", "CENTRAL BAKERY INC.",
        "NORTH HARBOR PRESS", "SILVER BRIDGE FOUNDATION", "GRAND MUSEUM TRUST")
TITLES = ("ANNUAL BUDGET REPORT", "MEETING MINUTES", "RESEARCH PROPOSAL", "PROGRESS REPORT",
          "STATEMENT OF ACCOUNT")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
NAMES = ("John Smith", "Mary Brown", "Robert Shank", "Alice Green", "David Miller", "Helen Ward")
ITEMS = ("Salaries", "Equipment", "Travel", "Supplies", "Printing", "Services")


def write_tree(out: Path, per_split: int, seed: int) -> None:
    rng = random.Random(f"docvqa:{seed}")
    qid, doc_id = 24580, 1200
    for split in ("train", "val"):
        n_docs = max(1, (per_split + 1) // 2)
        docs = []
        for i in range(n_docs):
            ucsf = "".join(rng.choices(string.ascii_lowercase, k=4)) + f"{rng.randint(0, 9999):04d}"
            page_no = rng.randint(1, 9)
            stem = f"{ucsf}_{page_no}"
            colour = split == "train" and i == n_docs - 1 and n_docs > 1
            img, lines, facts = _draw_page(rng, page_no, colour, upside_down=split == "train" and i == 0)
            synth.save_image(img if colour else img.convert("L"),
                             out / split / "documents" / f"{stem}.png", "PNG")
            empty = split == "val" and i == n_docs - 1
            dump_json(out / split / "ocr_results" / f"{stem}.json",
                      _read_v2([] if empty else lines, img.size))
            docs.append((stem, ucsf, page_no, doc_id, facts))
            doc_id += rng.randint(1, 40)
        records = []
        for q in range(per_split):
            stem, ucsf, page_no, did, facts = docs[q // 2]
            kinds = _questions(facts)
            question, golds, qtypes = kinds[(q + q // 2 * 2) % len(kinds)]
            records.append({
                "questionId": qid, "question": question, "question_types": qtypes,
                "image": f"documents/{stem}.png", "docId": did, "ucsf_document_id": ucsf,
                "ucsf_document_page_no": str(page_no), "answers": golds, "data_split": split,
            })
            qid += rng.randint(1, 9)
        dump_json(out / split / f"{split}_v1.0_withQT.json", {
            "dataset_name": "docvqa", "dataset_version": "1.0", "dataset_split": split,
            "data": records})


def _draw_page(rng: random.Random, page_no: int, colour: bool,
               upside_down: bool) -> tuple[Image.Image, list[dict[str, Any]], dict[str, str]]:
    """One page: letterhead, date, page number, title, body text, a small table, a signature."""
    img = Image.new("RGB", PAGE, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    ink = (25, 25, 25)
    facts = {
        "org": rng.choice(ORGS), "title": rng.choice(TITLES), "page": str(page_no),
        "date": f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(1960, 1999)}",
        "signer": rng.choice(NAMES),
    }
    lines: list[dict[str, Any]] = []
    y = MARGIN

    def line(text: str, size: int, x: float = MARGIN, fill: tuple[int, int, int] = ink) -> None:
        lines.append({"words": draw_words(draw, (x, y), text.split(), size, fill), "upside_down": False})

    line(facts["org"], 28, fill=(30, 60, 170) if colour else ink)
    y += 56
    line(facts["date"], 18)
    y += 34
    line(f"Page {page_no}", 18)
    y += 48
    line(facts["title"], 24)
    y += 48
    for _ in range(rng.randint(5, 8)):
        words = rng.sample(synth.WORDS, rng.randint(6, 10))
        while synth.text_size(" ".join(words), 16)[0] > PAGE[0] - 2 * MARGIN:
            words.pop()
        line(" ".join(words).capitalize(), 16)
        y += 26
    y += 20
    total = 0
    for item in rng.sample(ITEMS, 3):
        amount = rng.randint(100, 9000)
        total += amount
        _table_row(line, item, f"${amount:,}")
        y += 30
    _table_row(line, "Total", f"${total:,}")
    facts["total"] = f"${total:,}"
    y += 56
    line("Sincerely,", 16)
    y += 30
    line(facts["signer"], 18)
    if upside_down:
        lines.append(_stamp(img, ["FILE", "COPY"], (PAGE[0] - MARGIN - 200, PAGE[1] - 110)))
    return img, lines, facts


def _table_row(line: Any, label: str, amount: str) -> None:
    """A table row is two Read v2 lines: the label at the margin, the amount right-aligned."""
    line(label, 16)
    line(amount, 16, x=PAGE[0] - MARGIN - synth.text_size(amount, 16)[0])


def _stamp(img: Image.Image, words: list[str], at: tuple[int, int]) -> dict[str, Any]:
    """Draw ``words`` upside down (a page filed the wrong way round) and return the line with
    page-space word boxes: a box (x1, y1, x2, y2) in the tile lands at (W-x2, H-y2, W-x1, H-y1)."""
    size = 26
    tw, th = synth.text_size(" ".join(words), size)
    tile = Image.new("RGB", (tw + 16, th + 24), (255, 255, 255))
    drawn = draw_words(ImageDraw.Draw(tile), (8, 8), words, size, (150, 30, 30))
    tile = tile.rotate(180)
    img.paste(tile, at)
    tw, th = tile.size
    px, py = at
    placed = [(w, Box(px + tw - b.x2, py + th - b.y2, px + tw - b.x1, py + th - b.y1)) for w, b in drawn]
    return {"words": placed, "upside_down": True}


def _questions(facts: dict[str, str]) -> list[tuple[str, list[str], list[str]]]:
    return [
        ("What is the date mentioned in this letter?", [facts["date"]], ["layout"]),
        ("What is the page number?", [facts["page"], f"page {facts['page']}"], ["layout"]),
        ("What is the title of the document?", [facts["title"]], ["layout"]),
        ("What is the total amount?", [facts["total"]], ["table/list"]),
        ("Who signed the letter?", [facts["signer"]], ["form"]),
        ("What is the name of the organization?", [facts["org"]], ["layout", "others"]),
    ]


def _read_v2(lines: list[dict[str, Any]], size: tuple[int, int]) -> dict[str, Any]:
    """Read v2's result: integer quadrilaterals clockwise from the text's own top-left corner."""
    out = []
    for line in lines:
        words = line["words"]
        hull = Box(min(b.x1 for _, b in words), min(b.y1 for _, b in words),
                   max(b.x2 for _, b in words), max(b.y2 for _, b in words))
        out.append({
            "boundingBox": _quad(hull, line["upside_down"]),
            "text": " ".join(w for w, _ in words),
            "words": [{"boundingBox": _quad(b, line["upside_down"]), "text": w} for w, b in words],
        })
    return {"status": "Succeeded", "recognitionResults": [{
        "page": 1, "clockwiseOrientation": 0.0, "width": size[0], "height": size[1],
        "unit": "pixel", "lines": out}]}


def _quad(box: Box, upside_down: bool) -> list[int]:
    x1, y1, x2, y2 = (int(round(v)) for v in box.as_list())
    if upside_down:
        return [x2, y2, x1, y2, x1, y1, x2, y1]
    return [x1, y1, x2, y1, x2, y2, x1, y2]
