"""ScienceQA, image test split (``scienceqa_img``): the 2,017 test problems that come with an
image, multiple choice with 2-5 options.

Official layout (https://github.com/lupantech/ScienceQA, ``tools/download.sh``)::

    problems.json          {pid: {question, choices, answer (index), hint, image "image.png"|null,
                                  subject, grade "grade1".."grade12", topic, split, ...}}
    pid_splits.json        {"train": [...], "val": [...], "test": [...], ...}
    images/test/<pid>/image.png

The prompt is LLaVA's ``llava_test_CQM-A`` / lmms-eval ``scienceqa_img`` one: ``Context: <hint>``
(when there is one), the question, ``A. choice`` lines, and "Answer with the option's letter from
the given choices directly."

Scoring follows ``haotian-liu/LLaVA`` ``llava/eval/eval_science_qa.py`` (letter parsing) and
``lupantech/ScienceQA`` ``tools/evaluate_acc.py`` (breakdown): the reply is a letter A-E; else its
first character when it reads ``"X. ..."``; else the single match of ``The answer is ([A-Z]).``
(two matches, or none, is ``FAILED``; the ``.`` is any character, so "The answer is B" at the
very end does not match); a letter past the problem's choices is wrong. Accuracy by subject
(NAT/SOC/LAN), context modality (TXT: has a hint; IMG: has an image, here every problem; NO: no
context, here none) and grade (G1-6, G7-12), the overlapping groups of ``evaluate_acc.py``.

The ``FAILED`` quirk: LLaVA scores an unparsable reply as wrong (its ``random.choice`` line is
dead code after ``return -1``), while ScienceQA's own ``models/run_gpt3.py`` draws a random option.
vlir is deterministic and follows LLaVA (wrong), and reports ``failed`` and
``expected_with_random_fallback`` (the accuracy a uniform random draw would give on average).

VLM-R3 used lmms-eval's ``scienceqa_img`` (``configure(variant="vlmr3")``): the reply lower-cased
equal to the letter, or ``"X."`` at its start with an upper-case X; nothing else counts (not even
"The answer is B.").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, data_path, register
from vlir.jsonstream import InputFileError, iter_object_items

OPTIONS = ("A", "B", "C", "D", "E")
INSTRUCTION = "Answer with the option's letter from the given choices directly."
SUBJECTS = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}
_THE_ANSWER = re.compile(r"The answer is ([A-Z]).")


def llava_parse(text: str) -> str:
    """The letter eval_science_qa.py reads from a reply, or ``"FAILED"``."""
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    found = _THE_ANSWER.findall(text)
    return found[0] if len(found) == 1 else "FAILED"


def lmms_eval_correct(text: str, target: str) -> bool:
    """lmms-eval ``sqa_process_results`` (what VLM-R3 ran)."""
    pred = text.strip()
    if pred.lower() == target.lower():
        return True
    return len(pred) >= 2 and pred[0].isupper() and pred[1] == "." and pred[0].lower() == target.lower()


def grade_band(grade: str) -> str:
    """``grade1``..``grade6`` -> G1-6, ``grade7``..``grade12`` -> G7-12."""
    try:
        number = int(str(grade).replace("grade", ""))
    except ValueError:
        return ""
    return "G1-6" if 1 <= number <= 6 else "G7-12" if 7 <= number <= 12 else ""


@register
class ScienceQAImg(Benchmark):
    """ScienceQA image test split reader and scorer."""

    name = "scienceqa_img"
    official = "haotian-liu/LLaVA llava/eval/eval_science_qa.py + lupantech/ScienceQA tools/evaluate_acc.py"
    no_judge_reason = "its official scorer (LLaVA's eval_science_qa.py) asks no LLM"
    variants = ("official", "vlmr3")

    @property
    def scoring(self) -> str:
        if self.variant == "vlmr3":
            return "lmms-eval scienceqa_img exact letter / 'X.' prefix (what VLM-R3 ran)"
        return "LLaVA eval_science_qa.py letter parsing; FAILED is wrong (deterministic)"

    # --- reader ----------------------------------------------------------------------------------

    def items(self, root: Path) -> Iterator[BenchItem]:
        root = Path(root)
        problems, splits = root / "problems.json", root / "pid_splits.json"
        for path in (problems, splits):
            if not path.is_file():
                raise BenchmarkLayoutError(f"{path}: not found (ScienceQA expects problems.json, "
                                           f"pid_splits.json and images/test/<pid>/image.png under --root)")
        with open(splits, encoding="utf-8") as fh:
            try:
                test = json.load(fh).get("test")
            except (json.JSONDecodeError, AttributeError) as exc:
                raise BenchmarkLayoutError(f"{splits}: not a JSON object of splits ({exc})") from None
        if not isinstance(test, list):
            raise BenchmarkLayoutError(f"{splits}: no 'test' list")
        test_pids = {str(p) for p in test}
        try:
            for pid, prob in iter_object_items(problems):
                if pid in test_pids and isinstance(prob, dict) and prob.get("image"):
                    yield self._item(root, problems, pid, prob)
        except InputFileError as exc:
            raise BenchmarkLayoutError(str(exc)) from None

    def _item(self, root: Path, path: Path, pid: str, p: dict[str, Any]) -> BenchItem:
        missing = [k for k in ("question", "choices", "answer", "subject", "grade") if k not in p]
        if missing:
            raise BenchmarkLayoutError(f"{path}: problem {pid}: missing {missing}")
        choices = [str(c) for c in p["choices"]]
        if not isinstance(p["answer"], int) or not 2 <= len(choices) <= len(OPTIONS) \
                or not 0 <= p["answer"] < len(choices):
            raise BenchmarkLayoutError(f"{path}: problem {pid}: answer {p['answer']} does not fit "
                                       f"{len(choices)} choices")
        image = data_path(root, f"images/test/{pid}/{p['image']}", f"{path.name}: problem {pid}")
        if not image.is_file():
            raise BenchmarkLayoutError(f"{image}: image of problem {pid} not found")
        hint = str(p.get("hint") or "")
        lines = "\n".join(f"{OPTIONS[i]}. {c}" for i, c in enumerate(choices))
        question = f"{'Context: ' + hint + chr(10) if hint else ''}{p['question']}\n{lines}\n{INSTRUCTION}"
        subject = SUBJECTS.get(str(p["subject"]), str(p["subject"]))
        return BenchItem(
            id=f"scienceqa_img/{pid}", question=question, image=ImageRef(path=image),
            answer=OPTIONS[int(p["answer"])], category=subject, options=tuple(choices),
            meta={"pid": pid, "subject": subject, "grade": str(p["grade"]), "band": grade_band(p["grade"]),
                  "has_text": bool(hint), "has_image": True, "topic": p.get("topic", "")})

    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        """``n`` image test problems plus one text-only test problem and one train problem (which
        the reader must skip)."""
        from PIL import Image

        root = Path(root)
        subjects = list(SUBJECTS)
        problems: dict[str, Any] = {}
        for i in range(1, n + 3):
            pid = str(100 + i)
            split = "train" if i == n + 2 else "test"
            with_image = i != n + 1
            colour = ["red", "green", "blue"][(i + seed) % 3]
            choices = ["red", "green", "blue", "yellow"][: 2 + (i % 3)]
            problems[pid] = {
                "question": "Which colour fills the image?", "choices": choices,
                "answer": choices.index(colour) if colour in choices else 0,
                "hint": "The picture shows one colour." if i % 2 else "",
                "image": "image.png" if with_image else None, "task": "closed choice",
                "grade": f"grade{1 + (i * 5) % 12}", "subject": subjects[i % 3], "topic": "colours",
                "category": "Colours", "skill": "", "lecture": "", "solution": "", "split": split}
            if with_image:
                (root / "images" / split / pid).mkdir(parents=True, exist_ok=True)
                fill = choices[problems[pid]["answer"]]
                Image.new("RGB", (64, 48), fill).save(root / "images" / split / pid / "image.png")
        (root / "problems.json").write_text(json.dumps(problems, indent=1), encoding="utf-8")
        splits = {"train": [p for p, v in problems.items() if v["split"] == "train"],
                  "val": [], "test": [p for p, v in problems.items() if v["split"] == "test"]}
        (root / "pid_splits.json").write_text(json.dumps(splits), encoding="utf-8")

    # --- scoring ---------------------------------------------------------------------------------

    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        text = (answer if answer is not None else response).strip()
        return text if self.variant == "vlmr3" else llava_parse(text)

    def judge(self, item: BenchItem, extracted: str) -> float:
        if self.variant == "vlmr3":
            return float(lmms_eval_correct(extracted, item.answer))
        valid = OPTIONS[: len(item.options)]
        return float(extracted in valid and extracted == item.answer)

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float],
                  extracted: Sequence[str] | None = None) -> dict[str, Any]:
        """Official breakdown. ``extracted`` (optional, the parsed letters) adds the FAILED count
        and the accuracy a random fallback would give on average."""
        groups: dict[str, list[float]] = {}
        for it, s in zip(items, scores):
            keys = [it.meta["subject"], it.meta["band"], "IMG"]
            keys += ["TXT"] if it.meta["has_text"] else []
            keys += ["NO"] if not it.meta["has_text"] and not it.meta["has_image"] else []
            for key in keys:
                groups.setdefault(key, []).append(s)
        n = len(scores)
        order = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12")
        cats = {k: {"score": sum(groups[k]) / len(groups[k]), "n": len(groups[k])}
                for k in order if groups.get(k)}
        out = {"overall": sum(scores) / n if n else 0.0, "n": n, "scoring": self.scoring, "categories": cats,
               "empty_categories": [k for k in order if not groups.get(k)]}
        if extracted is not None:
            failed = [it for it, e in zip(items, extracted) if e == "FAILED"]
            out["failed"] = len(failed)
            luck = sum(1 / len(it.options) for it in failed)   # run_gpt3.py's random draw, on average
            out["expected_with_random_fallback"] = (sum(scores) + luck) / n if n else 0.0
        return out
