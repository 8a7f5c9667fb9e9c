"""TreeBench (``treebench``): 405 questions on dense SA-1B images with annotated target boxes
("traceable evidence"), five Perception and five Reasoning categories.

Layout read (the Hugging Face repo ``HaochenWang/TreeBench``): ``TreeBench.tsv`` with columns
``index, image`` (base64), ``question``, ``multi-choice options`` (``A. ..`` lines), ``answer``
(letter), ``category`` (``Perception/Attributes`` ...) and ``target_instances`` (a Python/JSON
list of ``[x1, y1, x2, y2]`` boxes in original pixels), streamed row by row.

Prompt and scoring follow ``Haochen-Wang409/TreeVGR inference_treebench.py``:

* prompt: the question, then `` Options:\\n`` + the options unless ``category == "OCR"`` (the
  literal test of the script: with the full ``Perception/OCR`` value it never fires, so options
  are always shown), then "Select the best answer to the above multiple-choice question based on
  the image. After the reasoning process, respond with only the letter of the correct option
  between <answer> and </answer>.";
* answer: the *first* ``<answer>...</answer>`` (DOTALL) of the response, stripped and
  upper-cased, else the whole response; correct when equal to ``answer`` upper-cased;
* accuracy per category over the ten official tags, overall = correct / total over those tags
  (an item whose category is not one of them is left out of the accuracy, as in the script); a
  bare category name (``OCR``) is mapped to its tag (a copy of the script in the wild maps
  ``OCR`` so);
* ``box_miou_official`` ("Mean IoU"): per item, for each target box the best IoU over the boxes
  the response writes as ``<box>[x1,y1,x2,y2]</box>`` (digits and commas only, no spaces: the
  script's regex), averaged over targets (0 without targets or boxes); the mean over *all* items.

vlir adds ``crop_miou``: the same figure with the engine's crop boxes (original pixels) in place
of ``<box>`` text, since a vlir model marks regions by cropping, not by ``<box>`` tags. No LLM
judge (the official script has none).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Sequence

from vlir import geometry
from vlir.eval.benchmarks import _common as C
from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, register
from vlir.records import Box

TAGS = ("Perception/Attributes", "Perception/Material", "Perception/Physical State", "Perception/Object Retrieval",
        "Perception/OCR", "Reasoning/Perspective Transform", "Reasoning/Ordering",
        "Reasoning/Contact and Occlusion", "Reasoning/Spatial Containment", "Reasoning/Comparison")
INSTRUCTION = ("\nSelect the best answer to the above multiple-choice question based on the image. After the "
               "reasoning process, respond with only the letter of the correct option between <answer> and </answer>.")
COLUMNS = ("index", "image", "question", "multi-choice options", "answer", "category", "target_instances")
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOX_TAG = re.compile(r"<box>(.*?)</box>", re.DOTALL)
_BOX_COORDS = re.compile(r"\[(\d+),(\d+),(\d+),(\d+)\]")
_OPTION = re.compile(r"^\s*([A-Z])[.:)]\s*(.*)$")


def official_tag(category: str) -> str:
    if category in TAGS:
        return category
    for tag in TAGS:
        if tag.split("/", 1)[1] == category:
            return tag
    return category


def box_tags(response: str) -> list[Box]:
    """The ``<box>[x1,y1,x2,y2]</box>`` boxes the official regexes accept."""
    out = []
    for content in _BOX_TAG.findall(response):
        m = _BOX_COORDS.match(content.strip())
        if m:
            x1, y1, x2, y2 = map(int, m.groups())
            if x1 < x2 and y1 < y2:
                out.append(Box(x1, y1, x2, y2))
    return out


def mean_best_iou(targets: Sequence[Box], predicted: Sequence[Box]) -> float:
    """The official per-item figure: for each target the best IoU over ``predicted``, averaged."""
    if not targets:
        return 0.0
    return sum(max((geometry.iou(t, p) for p in predicted), default=0.0) for t in targets) / len(targets)


@register
class TreeBench(Benchmark):
    """TreeBench reader and scorer: letter accuracy per official tag, plus the box mIoU of the
    ``<box>`` tags (official) and of the crops (vlir's)."""

    name = "treebench"
    official = "Haochen-Wang409/TreeVGR inference_treebench.py"
    no_judge_reason = "its official scorer (inference_treebench.py) asks no LLM"
    download = "huggingface.co/datasets/HaochenWang/TreeBench (TreeBench.tsv)"

    def items(self, root: Path) -> Iterator[BenchItem]:
        path = C.find_first(Path(root), ["TreeBench.tsv"], "TreeBench")
        for n, row in C.iter_tsv(path, COLUMNS):
            where = f"{path}, line {n}"
            try:
                raw = ast.literal_eval(C.cell(row, "target_instances") or "[]")
                boxes = tuple(Box(*map(float, b)) for b in raw)
            except (ValueError, SyntaxError, TypeError) as exc:
                raise BenchmarkLayoutError(f"{where}: target_instances is not a list of [x1,y1,x2,y2] ({exc})") from None
            category, options_text = C.cell(row, "category"), C.cell(row, "multi-choice options")
            question = C.cell(row, "question")
            prompt = (question if category == "OCR" else question + " Options:\n" + options_text) + INSTRUCTION
            options = [m.group(2).strip() for m in map(_OPTION.match, options_text.splitlines()) if m]
            yield BenchItem(id=f"treebench/{C.cell(row, 'index')}", question=prompt,
                            image=ImageRef(data=C.image_cell(row.get("image"), where)), answer=C.cell(row, "answer"),
                            category=official_tag(category), options=tuple(options), target_boxes=boxes,
                            meta={"raw_category": category})

    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        rows = []
        for i in range(n):
            data, boxes = C.sample_picture(seed * 1000 + i, size=(256, 192), n_boxes=1 + i % 2)
            rows.append({"index": i, "image": C.b64(data), "question": f"Which colour is the box in picture {i}?",
                         "multi-choice options": "A. red\nB. blue\nC. green\nD. purple",
                         "answer": "ABCD"[(i + seed) % 4], "category": TAGS[i % len(TAGS)],
                         "target_instances": repr([list(b) for b in boxes])})
        C.write_tsv(Path(root) / "TreeBench.tsv", COLUMNS, rows)

    # ---------------------------------------------------------------- scoring
    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        m = _ANSWER.search(response)
        return m.group(1).strip().upper() if m else response

    def judge(self, item: BenchItem, extracted: str) -> float:
        return float(extracted.upper() == item.answer.upper())

    def item_metrics(self, item: BenchItem, response: str, boxes: Sequence[Box]) -> dict[str, float]:
        return {"box_miou_official": mean_best_iou(item.target_boxes, box_tags(response)),
                "crop_miou": mean_best_iou(item.target_boxes, list(boxes))}

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float]) -> dict[str, Any]:
        cats: dict[str, list[float]] = defaultdict(list)
        for it, s in zip(items, scores):
            if it.category in TAGS:
                cats[it.category].append(s)
        kept = [s for v in cats.values() for s in v]
        return {"overall": sum(kept) / len(kept) if kept else 0.0, "n": len(kept),
                "categories": {t: {"score": sum(cats[t]) / len(cats[t]), "n": len(cats[t])} for t in TAGS if cats[t]},
                "left_out": len(scores) - len(kept)}

    def table(self, result: dict[str, Any]) -> tuple[list[str], list[str]]:
        cats = result.get("categories", {})
        heads = [t.split("/", 1)[1] for t in TAGS] + ["Overall"]
        vals = [f"{100 * cats[t]['score']:.2f}" if t in cats else "-" for t in TAGS] + [f"{100 * result['overall']:.2f}"]
        return heads, vals
