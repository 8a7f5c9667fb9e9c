"""MathVista testmini (1,000 problems): math reasoning over figures, multiple choice and free form.

Official layouts (https://github.com/lupantech/MathVista, https://huggingface.co/datasets/AI4Math/MathVista)::

    data/testmini.json      {pid: {question, image "images/<pid>.jpg", choices, unit, precision,
                                   answer, question_type, answer_type, pid, metadata{...}}}
    data/query.json         {pid: the prompt with its hint}  (testmini.json may carry "query")
    images/<pid>.jpg
  or
    data/testmini-*.parquet the same fields, ``query`` and ``decoded_image`` {bytes, path}

Scoring follows ``lupantech/MathVista`` ``evaluation/extract_answer.py`` then
``evaluation/calculate_score.py``:

* extraction (``extract``), ``lupantech/MathVista@53d525874bdde205128e6b160b7357a88277d479``
  ``evaluation/extract_answer.py`` ``extract_answer``: empty -> ""; a multiple-choice response
  equal to a choice text is kept; an integer/float response that parses as one is kept; with
  ``--quick_extract`` only, ``The answer is "(.*)"\\.``; else GPT with the five-shot prompt
  (:func:`extraction_request`: ``create_test_prompt``, sent as ``models/gpt.py`` sends it, one
  user message with one text part, ``temperature=0``, ``max_tokens=1024``, ``n=1``, the reply
  stripped). **With a judge** (``--judge-model``) vlir runs that default: the rule steps, no quick
  extract, then GPT, all on the whole response (the official ``response``), or on the
  ``<answer>`` content with ``--judge-input answer``. Differences: an empty GPT reply is taken as
  "" (the official retries it, which at temperature 0 repeats); a 400 (e.g. the prompt too long)
  gives "" as the official's "reduce the length" branch does; other failures stop the run after
  the shared retries (the official retries without end). **Without a judge** there is no official
  path (the official always ends at GPT): vlir runs the rule steps *and* the quick-extract rule on
  the ``<answer>`` content (else the whole response) and passes the text through unchanged where
  the official would ask GPT (rule-based, labelled so in ``scoring``).
* normalisation and comparison (``judge``), exactly ``normalize_extracted_answer`` and
  ``safe_equal``: multiple choice takes the first ``(X)`` letter, an upper-case option letter
  (``"b"`` is not one: it goes to the edit-distance match) maps to its choice, anything else to the
  choice with the smallest Levenshtein distance (first on ties); integer answers are
  ``str(int(float(x)))`` (so "3.7" -> "3"), float answers ``str(round(float(x), precision))``,
  lists ``str(x)``; the result must equal the answer string.
* aggregation: accuracy, and per value of question_type, answer_type, language, source, category,
  task, context, grade and skills (a problem counts under each of its skills).

VLM-R3 evaluated MathVista with lmms-eval's ``mathvista_testmini`` (same extraction and
normalisation, GPT extraction on, quick extract off), feeding it the last ``<answer>`` content.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, data_path, register
from vlir.eval.benchmarks.judge import JudgeError, JudgeRequest
from vlir.metrics import levenshtein
from vlir.jsonstream import InputFileError, iter_object_items

BREAKDOWN = ("question_type", "answer_type", "language", "source", "category", "task", "context",
             "grade", "skills")

# The official five-shot extraction prompt, ``demo_prompt.strip()`` of
# lupantech/MathVista@53d525874bdde205128e6b160b7357a88277d479 evaluation/prompts/ext_ans.py (MIT
# licence; its "\n" in the fifth example are real newlines in that Python string, and here).
DEMO_PROMPT = """Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?
Choices:
(A) 3/11
(B) 8/11
(C) 6/11
(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B"""


_SAMPLE_TYPES = ("text", "integer", "float", "list")
_SAMPLE_TASKS = ("figure question answering", "math word problem", "textbook question answering")
_SAMPLE_HINTS = {  # the official hint wording, per answer type
    "text": "and provide the correct option letter, e.g., A, B, C, D, at the end.",
    "integer": "requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.",
    "float": "requiring a floating-point number with one decimal place and provide the final value, "
             "e.g., 1.2, 1.3, 1.4, at the end.",
    "list": "requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], "
            "[1.2, 1.3, 1.4], at the end.",
}


def normalize_extracted_answer(extraction: Any, choices: Sequence[str] | None, question_type: str,
                               answer_type: str, precision: Any) -> str | None:
    """calculate_score.py's normalisation (see the module docstring)."""
    if question_type == "multi_choice":
        extraction = extraction.strip() if isinstance(extraction, str) else str(extraction)
        letters = re.findall(r"\(([a-zA-Z])\)", extraction)
        if letters:
            extraction = letters[0].upper()
        choices = list(choices or [])
        options = [chr(ord("A") + i) for i in range(len(choices))]
        if extraction in options:
            return choices[options.index(extraction)]
        distances = [levenshtein(extraction, c) for c in choices]
        return choices[distances.index(min(distances))]
    try:
        if answer_type == "integer":
            return str(int(float(extraction)))
        if answer_type == "float":
            return str(round(float(extraction), int(precision)))
        if answer_type == "list":
            return str(extraction)
    except (TypeError, ValueError, OverflowError):
        return None
    return extraction


def extraction_request(query: str, response: str) -> JudgeRequest:
    """The GPT call of extract_answer.py for one problem (``create_test_prompt`` + ``GPT_Model``)."""
    prompt = f"{DEMO_PROMPT}\n\n{query}\n\n{response}\n\nExtracted answer: "
    return JudgeRequest([{"role": "user", "content": [{"type": "text", "text": prompt}]}],
                        temperature=0, max_tokens=1024, n=1)


def quick_extract(text: str, problem: dict[str, Any], quick: bool = True) -> str | None:
    """The rule steps of extract_answer.py, in order (the ``The answer is "..."`` regex only with
    ``quick``, its ``--quick_extract``); None where the official script asks GPT."""
    if text == "":
        return ""
    if problem["question_type"] == "multi_choice" and text in (problem["choices"] or []):
        return text
    if problem["answer_type"] == "integer":
        try:
            return str(int(text))
        except ValueError:
            pass
    if problem["answer_type"] == "float":
        try:
            return str(float(text))
        except ValueError:
            pass
    if not quick:
        return None
    found = re.search(r'The answer is "(.*)"\.', text)
    return found.group(1) if found else None


@register
class MathVista(Benchmark):
    """MathVista testmini reader and scorer; ``configure(judge=...)`` adds the GPT extraction."""

    name = "mathvista"
    official = "lupantech/MathVista evaluation/extract_answer.py + evaluation/calculate_score.py"
    judged_variants = frozenset({"official"})

    @property
    def scoring(self) -> str:
        if self.llm is not None:
            return (f"official extraction (rules, no quick extract, then GPT) via LLM judge on the "
                    f"{'whole response' if self.judge_input == 'response' else '<answer> content'}; "
                    "official normalisation")
        return ("rule-based: official rules + quick extract on the <answer> content, passed through "
                "where the official script asks GPT; official normalisation")

    # --- reader ----------------------------------------------------------------------------------

    def items(self, root: Path) -> Iterator[BenchItem]:
        root = Path(root)
        for json_path in (root / "data" / "testmini.json", root / "testmini.json"):
            if json_path.is_file():
                yield from self._from_json(root, json_path)
                return
        parquets = sorted(root.glob("data/testmini-*.parquet")) + sorted(root.glob("testmini-*.parquet"))
        if not parquets:
            raise BenchmarkLayoutError(f"{root / 'data' / 'testmini.json'}: not found (MathVista expects "
                                       f"data/testmini.json + data/query.json + images/, or "
                                       f"data/testmini-*.parquet, under --root)")
        import pyarrow.parquet as pq

        for path in parquets:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=32):
                for row in batch.to_pylist():
                    image = row.get("decoded_image") or {}
                    if not image.get("bytes"):
                        raise BenchmarkLayoutError(f"{path}: problem {row.get('pid')} has no "
                                                   f"decoded_image bytes")
                    yield self._item(path, row, row.get("query"), ImageRef(data=image["bytes"]))

    def _from_json(self, root: Path, json_path: Path) -> Iterator[BenchItem]:
        query_path = json_path.parent / "query.json"
        queries: dict[str, str] = {}
        if query_path.is_file():
            with open(query_path, encoding="utf-8") as fh:
                queries = json.load(fh)
        try:
            for pid, problem in iter_object_items(json_path):
                if not isinstance(problem, dict):
                    raise BenchmarkLayoutError(f"{json_path}: problem {pid} is not an object")
                image = _image_path(root, json_path, str(problem.get("image", "")))
                query = queries.get(str(pid), problem.get("query"))
                if query is None:
                    raise BenchmarkLayoutError(f"{query_path}: no query for problem {pid} (and "
                                               f"{json_path.name} has no 'query')")
                yield self._item(json_path, problem, query, ImageRef(path=image))
        except InputFileError as exc:
            raise BenchmarkLayoutError(str(exc)) from None

    def _item(self, path: Path, p: dict[str, Any], query: str | None, image: ImageRef) -> BenchItem:
        need = ("pid", "question_type", "answer_type", "answer", "metadata")
        missing = [k for k in need if k not in p] + ([] if query else ["query"])
        if missing:
            raise BenchmarkLayoutError(f"{path}: problem {p.get('pid')}: missing {missing}")
        meta = dict(p["metadata"] or {})
        return BenchItem(
            id=f"mathvista/{p['pid']}", question=query, image=image, answer=str(p["answer"]),
            category=str(meta.get("task", "")), options=tuple(str(c) for c in p.get("choices") or ()),
            meta={"pid": str(p["pid"]), "question_type": p["question_type"], "answer_type": p["answer_type"],
                  "precision": p.get("precision"), "unit": p.get("unit"), "query": query,
                  "choices": list(p.get("choices") or []),
                  **{k: meta.get(k) for k in BREAKDOWN if k not in ("question_type", "answer_type")}})

    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        """``n`` bar-chart problems (cycling multi_choice / integer / float / list) as
        data/testmini.json + data/query.json + images/."""
        from PIL import Image, ImageDraw

        root = Path(root)
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "images").mkdir(parents=True, exist_ok=True)
        problems, queries = {}, {}
        for i in range(1, n + 1):
            at = _SAMPLE_TYPES[(i + seed) % 4]
            qt = "multi_choice" if at == "text" else "free_form"
            bars = [1 + (i + k) % 4 for k in range(3)]
            img = Image.new("RGB", (120, 100), "white")
            for k, h in enumerate(bars):
                ImageDraw.Draw(img).rectangle((10 + 35 * k, 90 - 20 * h, 35 + 35 * k, 90), fill=(60, 120, 200))
            img.save(root / "images" / f"{i}.jpg")
            choices = [str(b) for b in sorted(set(bars + [9]))] if qt == "multi_choice" else None
            answer = {"text": str(max(bars)), "integer": str(sum(bars)), "float": f"{sum(bars) / 2:.1f}",
                      "list": str(bars)}[at]
            question = "What is the height of the tallest bar?" if choices else "What do the bars add up to?"
            query = f"Hint: Please answer the question {_SAMPLE_HINTS[at]}\nQuestion: {question}"
            if choices:
                query += "\nChoices:\n" + "\n".join(f"({chr(65 + k)}) {c}" for k, c in enumerate(choices))
            skills = ["arithmetic reasoning"] + (["statistical reasoning"] if i % 2 else [])
            problems[str(i)] = {
                "question": question, "image": f"images/{i}.jpg", "choices": choices, "unit": None,
                "precision": 1.0 if at == "float" else None, "answer": answer, "question_type": qt,
                "answer_type": at, "pid": str(i),
                "metadata": {"split": "testmini", "language": "english", "img_width": 120,
                             "img_height": 100, "source": "vlir-sample", "category": "math-targeted-vqa",
                             "task": _SAMPLE_TASKS[i % 3], "context": "bar chart",
                             "grade": "elementary school", "skills": skills}}
            queries[str(i)] = query
        (root / "data" / "testmini.json").write_text(json.dumps(problems, indent=1), encoding="utf-8")
        (root / "data" / "query.json").write_text(json.dumps(queries, indent=1), encoding="utf-8")

    # --- scoring ---------------------------------------------------------------------------------

    def _problem(self, item: BenchItem) -> dict[str, Any]:
        return {"question_type": item.meta["question_type"], "answer_type": item.meta["answer_type"],
                "choices": item.meta["choices"]}

    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        if self.llm is None:
            text = (answer if answer is not None else response).strip()
            ruled = quick_extract(text, self._problem(item), quick=True)
            return text if ruled is None else ruled
        text = self.judge_text(response, answer)
        ruled = quick_extract(text, self._problem(item), quick=False)
        if ruled is not None:
            return ruled
        try:
            return self.llm.ask(extraction_request(item.meta["query"], text)).strip()
        except JudgeError as exc:
            if exc.status == 400:  # the official's "reduce the length" branch: no extraction
                return ""
            raise

    def judge(self, item: BenchItem, extracted: str) -> float:
        m = item.meta
        prediction = normalize_extracted_answer(extracted, m["choices"], m["question_type"],
                                                m["answer_type"], m["precision"])
        return float(prediction == item.answer)

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float]) -> dict[str, Any]:
        groups: dict[str, dict[str, list[float]]] = {k: {} for k in BREAKDOWN}
        for it, s in zip(items, scores):
            for key in BREAKDOWN:
                values = it.meta.get(key)
                for v in (values if key == "skills" else [values]) or []:
                    groups[key].setdefault(str(v), []).append(s)
        n = len(scores)
        table = {k: {v: {"score": sum(x) / len(x), "n": len(x)} for v, x in sorted(d.items())}
                 for k, d in groups.items()}
        return {"overall": sum(scores) / n if n else 0.0, "n": n, "correct": int(sum(scores)),
                "scoring": self.scoring, "breakdown": table, "categories": table["task"]}


def _image_path(root: Path, json_path: Path, rel: str) -> Path:
    """``images/<pid>.jpg`` is relative to the download root (the parent of ``data/``)."""
    for base in (root, json_path.parent, json_path.parent.parent):
        if rel and (full := data_path(base, rel, json_path.name)).is_file():
            return full
    raise BenchmarkLayoutError(f"{root / rel}: image not found (listed in {json_path})")
