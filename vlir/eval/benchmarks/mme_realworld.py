"""MME-RealWorld (``mme_realworld``, 23,599 English questions) and MME-RealWorld-Lite
(``mme_realworld_lite``, 1,919): five-option questions on high-resolution real-world images, in
Task (Perception / Reasoning) > Subtask (Monitoring, OCR with Complex Context, Diagram and Table,
Autonomous_Driving, Remote Sensing) > Category.

Layouts read, first found wins:

* ``MME_RealWorld.json`` (Lite: ``MME_RealWorld_Lite.json``) + image folders: a JSON array of
  ``Question_id, Image`` (path relative to the root), ``Text, Question Type, Answer choices``
  (``["(A) ..", ...]``), ``Ground truth`` (letter), ``Task, Subtask, Category`` (streamed with ijson);
* the base64 TSV (``MME_RealWorld.tsv`` / ``MME-RealWorld.tsv``, Lite ``..._Lite.tsv``) or the
  parquet form (``*.parquet`` in the root or ``data/``: the Lite dataset and the lmms-eval copy):
  ``index, question, image, multi-choice options`` (or ``A``..``E`` columns), ``answer``,
  ``category`` (``Perception/<Subtask>`` ...), ``l2-category`` (the Category). As lmms-eval reads
  it: Task = Perception when ``category`` says so, else Reasoning; Subtask = its last ``/`` part.

Prompt: the official ``evaluation/model_vqa_mme_real_world.py``: ``Text`` + `` The choices are
listed below: \\n`` + one choice per line + the test prompt + ``\\nThe best answer is:``.

Scoring follows ``yfzhang114/MME-RealWorld evaluation/eval_your_results.py``:
``extract_characters_regex`` then ``Ground truth == extracted``, counted per Task > Subtask >
Category (categories containing ``attribute`` are folded into ``<first part>/attribute``);
Subtask, Task and overall accuracy are item-weighted (micro). Quirks kept, each tested:

* the prefix list lacks two commas, so ``"The best option is" "The correct option is"`` and
  ``"Best answer:" "Best option:"`` are single concatenated strings: "The correct option is" and
  "Best answer:" are *not* removed, and in "Best answer: C" the first capital A-E is the ``B`` of
  "Best";
* after removing prefixes, a text of more than 10 words with no capital A-E extracts nothing;
* otherwise the first capital A-E anywhere wins ("A cat... (C)" gives A);
* with no capital A-E, the first choice whose text contains the (lower-cased) answer gives its
  letter, so an empty answer extracts ``A``.

vlir applies the rule to the ``<answer>`` content when the response has one (else to the whole
response): the official script sees only a direct answer, and over a whole reasoning trace its
"first capital A-E" rule would read the reasoning. No LLM judge (the official script has none).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Sequence

from vlir.eval.benchmarks import _common as C
from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, data_path, register

TEST_PROMPT = ("Select the best answer to the above multiple-choice question based on the image. "
               "Respond with only the letter (A, B, C, D, or E) of the correct option.")
# The official list, with its two missing commas (Python concatenates adjacent literals).
PREFIXES = ("The best answer is", "The correct answer is", "The answer is", "The answer",
            "The best option is" "The correct option is", "Best answer:" "Best option:")
JSON_KEYS = ("Question_id", "Image", "Text", "Answer choices", "Ground truth", "Task", "Subtask", "Category")


def extract_characters_regex(s: str, choices: Sequence[str]) -> str:
    """``eval_your_results.py``'s extraction, quirks included (see the module docstring)."""
    s = s.strip()
    for prefix in PREFIXES:
        s = s.replace(prefix, "")
    if len(s.split()) > 10 and not re.search("[ABCDE]", s):
        return ""
    m = re.search(r"[ABCDE]", s)
    if m is None:
        for choice in choices:
            if s.lower() in choice.lower():
                return choice[1]
        return ""
    return m[0]


def official_prompt(text: str, choices: Sequence[str]) -> str:
    return (text + " The choices are listed below: \n" + "".join(c + "\n" for c in choices)
            + TEST_PROMPT + "\nThe best answer is:")


def category_key(category: str) -> str:
    category = category.lower()
    return category.split("/")[0] + "/attribute" if "attribute" in category else category


def _choices(row: dict[str, Any], where: str) -> list[str]:
    raw = row.get("multi-choice options")
    if raw is None or raw == "":
        return [f"({L}) {C.cell(row, L)}" for L in "ABCDE" if C.cell(row, L)]
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise BenchmarkLayoutError(f"{where}: multi-choice options is not a list literal") from None
    return [str(c).replace("（", "(").replace("）", ")") for c in raw]


class MMERealWorld(Benchmark):
    official = "yfzhang114/MME-RealWorld evaluation/eval_your_results.py (extract_characters_regex)"
    no_judge_reason = "its official scorer (eval_your_results.py) asks no LLM"
    json_name = "MME_RealWorld.json"
    tsv_names = ("MME_RealWorld.tsv", "MME-RealWorld.tsv")

    # ---------------------------------------------------------------- reading
    def items(self, root: Path) -> Iterator[BenchItem]:
        root = Path(root)
        if (root / self.json_name).is_file():
            yield from self._json(root, root / self.json_name)
            return
        for name in self.tsv_names:
            if (root / name).is_file():
                yield from self._table(C.iter_tsv(root / name, ("index", "question", "answer", "image")), root / name)
                return
        parquets = sorted(root.glob("*.parquet")) + sorted(root.glob("data/*.parquet"))
        if not parquets:
            raise BenchmarkLayoutError(f"{root}: no {self.json_name}, {' / '.join(self.tsv_names)} or *.parquet "
                                       f"here; is this the {self.name} download?")
        for p in parquets:
            yield from self._table(C.iter_parquet(p, ("question", "answer", "image")), p)

    def _json(self, root: Path, path: Path) -> Iterator[BenchItem]:
        import ijson

        with open(path, "rb") as fh:
            try:
                for n, rec in enumerate(ijson.items(fh, "item", use_float=True)):
                    missing = [k for k in JSON_KEYS if k not in rec]
                    if missing:
                        raise BenchmarkLayoutError(f"{path}, item {n}: lacks {', '.join(missing)}")
                    choices = [str(c) for c in rec["Answer choices"]]
                    yield self._item(str(rec["Question_id"]), official_prompt(rec["Text"], choices),
                                     ImageRef(path=data_path(root, rec["Image"], f"{path.name}, item {n}")), str(rec["Ground truth"]).strip(), choices,
                                     rec["Task"], rec["Subtask"], rec["Category"])
            except ijson.JSONError as exc:
                raise BenchmarkLayoutError(f"{path}: not a JSON array of questions ({exc})") from None

    def _table(self, rows, path: Path) -> Iterator[BenchItem]:
        for n, row in rows:
            where = f"{path}, row {n}"
            choices = _choices(row, where)
            cat = C.cell(row, "category")
            task = "Perception" if "perception" in cat.lower() else "Reasoning"
            qid = C.cell(row, "index") or C.cell(row, "question_id") or str(n)
            yield self._item(qid, official_prompt(C.cell(row, "question"), choices),
                             ImageRef(data=C.image_cell(row.get("image"), where)), C.cell(row, "answer"), choices,
                             task, cat.split("/")[-1], C.cell(row, "l2-category"))

    def _item(self, qid: str, prompt: str, image: ImageRef, answer: str, choices: list[str],
              task: str, subtask: str, category: str) -> BenchItem:
        return BenchItem(id=f"{self.name}/{qid}", question=prompt, image=image, answer=answer,
                         category=f"{task}/{subtask}", options=tuple(c[4:] if c[:1] == "(" else c for c in choices),
                         meta={"choices": choices, "task": task, "subtask": subtask,
                               "fine": category_key(category)})

    # ---------------------------------------------------------------- sample tree
    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        """The JSON + images form in ``root``, the base64 TSV in ``root/tsv`` and the parquet form
        in ``root/parquet/data`` (the same questions)."""
        import json

        root = Path(root)
        subtasks = [("Perception", "Remote Sensing", "color"), ("Reasoning", "Monitoring", "attribute/color"),
                    ("Perception", "OCR with Complex Context", "text recognition")]
        records, rows = [], []
        for i in range(n):
            task, sub, cat = subtasks[i % len(subtasks)]
            data, _ = C.sample_picture(seed * 1000 + i, size=(256, 192))
            rel = f"{sub.replace(' ', '_').lower()}/{i}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            choices = C.lettered(["red", "blue", "green", "white", "unable to decide"])
            gt = "ABCD"[(i + seed) % 4]
            records.append({"Question_id": f"q{i}", "Image": rel, "Text": f"What color is the box in picture {i}?",
                            "Question Type": "Multiple Choice", "Answer choices": choices, "Ground truth": gt,
                            "Task": task, "Subtask": sub, "Category": cat})
            rows.append({"index": f"q{i}", "question": records[-1]["Text"], "image": C.b64(data),
                         "multi-choice options": repr(choices), "answer": gt, "category": f"{task}/{sub}",
                         "l2-category": cat})
        (root / self.json_name).write_text(json.dumps(records, indent=1), encoding="utf-8")
        C.write_tsv(root / "tsv" / self.tsv_names[0], list(rows[0]), rows)
        C.write_parquet(root / "parquet" / "data" / "test-00000-of-00001.parquet",
                        [{**r, "image": {"bytes": C.image_cell(r["image"], "sample"), "path": None},
                          "multi-choice options": records[i]["Answer choices"]} for i, r in enumerate(rows)])

    # ---------------------------------------------------------------- scoring
    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        return extract_characters_regex(answer if answer is not None else response, item.meta.get("choices", []))

    def judge(self, item: BenchItem, extracted: str) -> float:
        return float(item.answer == extracted)

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float]) -> dict[str, Any]:
        sub: dict[str, list[float]] = defaultdict(list)
        task: dict[str, list[float]] = defaultdict(list)
        fine: dict[str, list[float]] = defaultdict(list)
        for it, s in zip(items, scores):
            sub[it.category].append(s)
            task[it.meta.get("task", it.category.split("/")[0])].append(s)
            fine[f"{it.category}/{it.meta.get('fine', '')}"].append(s)
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        n = len(scores)
        return {"overall": mean(scores) if n else 0.0, "n": n,
                "categories": {k: {"score": mean(v), "n": len(v)} for k, v in sorted(sub.items())},
                "tasks": {k: {"score": mean(v), "n": len(v)} for k, v in sorted(task.items())},
                "fine": {k: {"score": mean(v), "n": len(v)} for k, v in sorted(fine.items())}}

    def table(self, result: dict[str, Any]) -> tuple[list[str], list[str]]:
        cats, tasks = result.get("categories", {}), result.get("tasks", {})
        heads = list(cats) + [f"{t} (all)" for t in tasks] + ["Overall"]
        vals = ([f"{100 * v['score']:.2f}" for v in cats.values()] + [f"{100 * v['score']:.2f}" for v in tasks.values()]
                + [f"{100 * result['overall']:.2f}"])
        return heads, vals


@register
class MMERealWorldFull(MMERealWorld):
    name = "mme_realworld"
    download = "huggingface.co/datasets/yifanzhang114/MME-RealWorld (JSON + image zips) or the base64 TSV"


@register
class MMERealWorldLite(MMERealWorld):
    name = "mme_realworld_lite"
    json_name = "MME_RealWorld_Lite.json"
    tsv_names = ("MME_RealWorld_Lite.tsv", "MME-RealWorld-Lite.tsv")
    download = "huggingface.co/datasets/yifanzhang114/MME-RealWorld-Lite (parquet)"
