"""V* Bench (``vstar``): 191 multiple-choice questions on high-resolution SA-1B images, in two
categories, ``direct_attributes`` (115) and ``relative_position`` (76).

Layouts read (the Hugging Face repo ``craigwu/vstar_bench``):

* ``<root>/test_questions.jsonl`` (preferred when present): ``image`` (``direct_attributes/sa_N.jpg``),
  ``text`` (question, ``(A) ...`` option lines, "Answer with the option's letter from the given
  choices directly."), ``category``, ``question_id``, ``label`` (the letter);
* ``<root>/direct_attributes/`` and ``<root>/relative_position/``: ``sa_N.jpg`` + ``sa_N.json``
  (``target_object`` names, ``bbox`` as ``[x, y, w, h]`` per object, ``question``, ``options`` with
  the correct one first). Without the jsonl, options are put in a fixed order per item (a shuffle
  seeded by the item id, so the right answer is not always A) and lettered like the jsonl.

The ``bbox`` annotations are kept as ``target_boxes`` (original pixels, x1,y1,x2,y2) in both
forms, so the runner can report whether the model's crops hit the targets.

Scoring. The official ``vstar_bench_eval.py`` (``penghao-wu/vstar``) is likelihood-based: it
scores each option's loss and counts the item right when option 0 wins; per category and overall
it prints ``np.mean`` over items (overall = all 191 items, not the mean of the two categories). A
crop-and-zoom model generates, so vlir scores the generated letter against ``label`` (the
convention of the jsonl and of every generative peer), with the same per-category and overall
means. The letter is read from the ``<answer>`` content (else the whole response) with
VLMEvalKit's ``can_infer``, exactly, in the version HR-Bench ships
(:mod:`vlir.eval.benchmarks._can_infer`: ``DreamMr/HR-Bench@b17b199``): a bare ``B``, ``(B)``,
``B.`` reads as B; a quoted ``"B"`` or ``'C'`` does not; a reject phrase ("Cannot determine the
answer") reads as Z; two letters read as none, then one option text. No LLM judge (the official
script has none).

Alternative, labelled ``lenient_letter``: vlir's friendlier reader
(:func:`vlir.eval.benchmarks._common.lenient_option`: quotes stripped, no reject phrases).

Alternative, labelled ``vlmr3_acc_verifier``: VLM-R3's ``src/eval/test_vstar_r3.py``
``acc_verifier`` with its LLM fallback off: student answer = last ``<answer>`` content (else the
response's last line), compared case-insensitively to each ``/``-separated label; a single-letter
mismatch is 0; anything else would go to their LLM (qwen2.5-72b) and here counts 0, which is what
their script does when the API call fails (``student == ground_truth``, already false).

Alternative, labelled ``deepeyes_rule``: DeepEyes' ``eval/judge_result.py`` rule path
(:func:`vlir.eval.benchmarks._common.deepeyes_rule`) on the ``<answer>`` content, its LLM judge off.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from vlir import geometry
from vlir.eval.benchmarks import _common as C
from vlir.eval.benchmarks._can_infer import can_infer
from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, data_path, register

CATEGORIES = ("direct_attributes", "relative_position")
DIRECT = "Answer with the option's letter from the given choices directly."
_OPTION_LINE = re.compile(r"^\(([A-Z])\)\s*(.*)$")
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def read_letter(text: str, options: dict[str, str]) -> str:
    """VLMEvalKit's ``can_infer`` over the option letters/texts ('' when it reads none)."""
    return can_infer(text.strip(), options)


def vlmr3_acc_verifier(response: str, label: str) -> float:
    """VLM-R3 ``test_vstar_r3.py`` ``acc_verifier``, rule path only (LLM fallback counts 0)."""
    found = _ANSWER_TAG.findall(response)
    student = found[-1].strip() if found else response.strip().split("\n")[-1]
    for gt in (g.strip() for g in label.split("/")):
        if gt.lower() == student.lower():
            return 1.0
        if len(gt) == 1 and len(student) == 1:
            return 0.0
    return 0.0


def _boxes(ann: dict[str, Any], where: str) -> tuple:
    raw = ann.get("bbox") or []
    if raw and isinstance(raw[0], (int, float)):
        raw = [raw]
    try:
        return tuple(geometry.from_xywh(*map(float, b)) for b in raw)
    except (TypeError, ValueError) as exc:
        raise BenchmarkLayoutError(f"{where}: bbox must be [x, y, w, h] lists ({exc})") from None


@register
class VStar(Benchmark):
    """V* Bench reader (the jsonl, or the two category folders) and generated-letter scorer, with
    VLM-R3's rule verifier as an alternative."""

    name = "vstar"
    official = "penghao-wu/vstar vstar_bench_eval.py (likelihood-based; vlir scores the generated letter)"
    no_judge_reason = "its official scorer (vstar_bench_eval.py) ranks the options by likelihood and asks no LLM"
    download = "huggingface.co/datasets/craigwu/vstar_bench (the whole repo)"

    # ---------------------------------------------------------------- reading
    def items(self, root: Path) -> Iterator[BenchItem]:
        root = Path(root)
        if (root / "test_questions.jsonl").is_file():
            yield from self._jsonl(root)
        elif any((root / c).is_dir() for c in CATEGORIES):
            yield from self._folders(root)
        else:
            raise BenchmarkLayoutError(f"{root}: neither test_questions.jsonl nor direct_attributes/ and "
                                       "relative_position/ here; is this the V* Bench download?")

    def _annotation(self, image: Path) -> dict[str, Any]:
        ann = image.with_suffix(".json")
        if not ann.is_file():
            return {}
        try:
            return json.loads(ann.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchmarkLayoutError(f"{ann}: not JSON ({exc})") from None

    def _jsonl(self, root: Path) -> Iterator[BenchItem]:
        path = root / "test_questions.jsonl"
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    image, text, label = rec["image"], rec["text"], rec["label"]
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise BenchmarkLayoutError(f"{path}, line {n}: needs image/text/label ({exc!r})") from None
                category = rec.get("category") or image.split("/")[0]
                options = [m.group(2) for m in map(_OPTION_LINE.match, text.splitlines()) if m]
                img = data_path(root, image, f"{path.name}, line {n}")
                ann = self._annotation(img)
                yield BenchItem(
                    id=f"vstar/{category}/{Path(image).stem}", question=text.strip(), image=ImageRef(path=img),
                    answer=str(label).strip(), category=category, options=tuple(options),
                    target_boxes=_boxes(ann, str(img.with_suffix(".json"))),
                    meta={"question_id": rec.get("question_id"), "target_object": ann.get("target_object", [])})

    def _folders(self, root: Path) -> Iterator[BenchItem]:
        for category in CATEGORIES:
            folder = root / category
            if not folder.is_dir():
                continue
            for ann_path in sorted(folder.glob("*.json")):
                images = [p for p in folder.glob(ann_path.stem + ".*") if p.suffix.lower() != ".json"]
                if not images:
                    raise BenchmarkLayoutError(f"{ann_path}: no image {ann_path.stem}.jpg beside it")
                ann = self._annotation(images[0])
                try:
                    question, options = ann["question"], list(ann["options"])
                except (KeyError, TypeError):
                    raise BenchmarkLayoutError(f"{ann_path}: needs question and options") from None
                item_id = f"vstar/{category}/{ann_path.stem}"
                order = list(range(len(options)))
                random.Random(item_id).shuffle(order)
                shown = [options[i] for i in order]
                text = "\n".join([question, *C.lettered(shown), DIRECT])
                yield BenchItem(id=item_id, question=text, image=ImageRef(path=images[0]),
                                answer=C.LETTERS[order.index(0)], category=category, options=tuple(shown),
                                target_boxes=_boxes(ann, str(ann_path)),
                                meta={"target_object": ann.get("target_object", [])})

    # ---------------------------------------------------------------- sample tree
    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        root = Path(root)
        lines = []
        colors = ["red", "blue", "green", "white", "black"]
        for i in range(n):
            category = CATEGORIES[i % 2]
            stem = f"sa_{1000 + seed * 100 + i}"
            data, boxes = C.sample_picture(seed * 100 + i, n_boxes=1 if category == CATEGORIES[0] else 2)
            (root / category).mkdir(parents=True, exist_ok=True)
            (root / category / f"{stem}.jpg").write_bytes(data)
            bbox = [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in boxes]
            if category == CATEGORIES[0]:
                ann = {"target_object": ["box"], "bbox": bbox, "question": f"What is the color of the box in picture {i}?",
                       "options": colors[i % 5:] + colors[:i % 5]}
                ann["options"] = ann["options"][:4]
            else:
                left = "first" if boxes[0][0] < boxes[1][0] else "second"
                ann = {"target_object": ["first box", "second box"], "bbox": bbox,
                       "question": f"Is the first box on the left or right side of the second box in picture {i}?",
                       "options": ["left", "right"] if left == "first" else ["right", "left"]}
            (root / category / f"{stem}.json").write_text(json.dumps(ann), encoding="utf-8")
            order = list(range(len(ann["options"])))
            random.Random(seed * 1000 + i).shuffle(order)
            shown = [ann["options"][j] for j in order]
            lines.append({"image": f"{category}/{stem}.jpg", "text": "\n".join([ann["question"], *C.lettered(shown), DIRECT]),
                          "category": category, "question_id": i, "label": C.LETTERS[order.index(0)]})
        with open(root / "test_questions.jsonl", "w", encoding="utf-8") as fh:
            for rec in lines:
                fh.write(json.dumps(rec) + "\n")

    # ---------------------------------------------------------------- scoring
    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        text = answer if answer is not None else response
        return read_letter(text, dict(zip(C.LETTERS, item.options)))

    def judge(self, item: BenchItem, extracted: str) -> float:
        return float(extracted == item.answer)

    def alternatives(self, item: BenchItem, response: str, answer: str | None) -> dict[str, float]:
        gold = dict(zip(C.LETTERS, item.options)).get(item.answer, "")
        pred = answer if answer is not None else response
        options = dict(zip(C.LETTERS, item.options))
        return {"vlmr3_acc_verifier": vlmr3_acc_verifier(response, item.answer),
                "deepeyes_rule": C.deepeyes_rule(pred.strip(), item.answer, f"{item.answer}. {gold}"),
                "lenient_letter": float(C.lenient_option(pred.strip(), options) == item.answer)}

    def table(self, result: dict[str, Any]) -> tuple[list[str], list[str]]:
        cats = result.get("categories", {})
        pick = lambda c: f"{100 * cats[c]['score']:.2f}" if c in cats else "-"  # noqa: E731
        return (["Attribute", "Spatial", "Overall"],
                [pick("direct_attributes"), pick("relative_position"), f"{100 * result['overall']:.2f}"])


def strip_direct(question: str, phrases: Sequence[str] = (DIRECT,)) -> str:
    """The question without a direct-answer instruction (VLM-R3 removes it before prompting)."""
    for p in phrases:
        question = question.replace(p, "")
    return question.strip()
