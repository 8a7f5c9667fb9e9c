"""HR-Bench 4K and 8K (``hrbench4k``, ``hrbench8k``): 800 four-option questions each on 4K / 8K
images, in two categories: FSP (fine-grained single-instance perception, ``category == single``)
and FCP (fine-grained cross-instance perception, ``cross``).

Layout read (the Hugging Face repo ``DreamMr/HR-Bench``): ``hr_bench_4k.tsv`` / ``hr_bench_8k.tsv``
with columns ``index, question, answer, category, A, B, C, D, cycle_category, image`` (``image``
base64), or the parquet copies (``hr_bench_4k.parquet`` ..., the image as base64 text or a
``{"bytes": ...}`` struct). The files are several GB: rows are streamed one at a time.

Prompt: VLMEvalKit's ``ImageMCQDataset.build_prompt``, which HR-Bench's toolkit uses unchanged:
``Question: {q}\\nOptions:\\nA. ..\\nB. ..\\n...Please select the correct answer from the options above. \\n``.

Scoring follows ``DreamMr/HR-Bench hrbench/vlmeval/dataset/image_mcq.py`` (``HRBenchDataset.evaluate``)
and ``utils/hrbench.py`` (``hrbench_score``): rows are grouped by ``cycle_category``; in each
cycle, accuracy over all rows and over each category; each figure is then averaged over the
cycles. Quirk kept: the average divides by the number of cycles even when a category is absent
from a cycle (such a cycle contributes 0 to that category's sum).

Per-item correctness: the official toolkit asks an LLM (lmdeploy, ``llm_path``) "does the
answer correctly answer the question?" with the question, the options and ``X. <gt text>``, and
counts 1 when its lower-cased reply *starts* with ``yes`` (a leading space or "Yes," after
other text counts 0). That judge is available through ``--judge-model`` (any OpenAI-compatible
model; :meth:`HRBench.llm_judge`): the same single user message (``utils/hrbench.py``
``pipeline_eval``: the instruction, a space, ``build_prompt``'s content; no system message), built
from the TSV's own cells, with the whole response as ``prediction`` (``--judge-input answer``:
the ``<answer>`` content instead), ``temperature=0.2`` and ``top_p=0.8`` (its lmdeploy
``GenerationConfig``). Not sent: ``top_k=40`` (no such parameter in the OpenAI API) and a token
cap (lmdeploy's default, which varies by version). Off by default: the **rule-based** path reads
the option letter with VLMEvalKit's ``can_infer`` (the version HR-Bench ships,
:mod:`vlir.eval.benchmarks._can_infer`) from the ``<answer>`` content (else the whole response)
and compares it to ``answer``; HR-Bench's own ``evaluate`` never calls ``can_infer`` (every item
goes to the judge), so this path is labelled rule-based. ``lenient_letter`` (labelled
alternative): vlir's friendlier reader (:func:`vlir.eval.benchmarks._common.lenient_option`).

Also reported: ``per_question_mean`` (plain mean over all rows, no cycle grouping) and
``fsp_fcp_mean`` (the mean of the FSP and FCP plain means: the "overall" DeepEyes'
``eval/judge_result_hrbench.py`` prints), and the labelled alternative ``deepeyes_rule`` (its
rule path, LLM judge off; :func:`vlir.eval.benchmarks._common.deepeyes_rule`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Sequence

from vlir.eval.benchmarks import _common as C
from vlir.eval.benchmarks._can_infer import can_infer
from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, register
from vlir.eval.benchmarks.judge import JudgeRequest

COLUMNS = ("index", "question", "answer", "category", "A", "B", "C", "D", "cycle_category", "image")
NAMES = {"single": "FSP", "cross": "FCP"}
_YES_NO = re.compile(r"^(yes|no)", re.IGNORECASE)
JUDGE_INSTRUCTION = ("You are a helpful and precise assistant for checking the quality of the answer. "
                     "Please answer in only yes or no.")


def mcq_prompt(question: str, options: dict[str, str]) -> str:
    """VLMEvalKit ``ImageMCQDataset.build_prompt`` (no hint)."""
    text = f"Question: {question}\n"
    if options:
        text += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        text += "Please select the correct answer from the options above. \n"
    return text


def judge_request(question: str, options: dict[str, str], label: str, prediction: str) -> JudgeRequest:
    """The call ``utils/hrbench.py`` makes for one row (``build_prompt`` + ``pipeline_eval``):
    ``question`` and ``options`` as the TSV holds them, ``label`` the answer letter."""
    prompt = f"{question}\n"
    if options:
        prompt += "Options:\n" + "".join(f"{k}. {v}\n" for k, v in options.items())
        prompt += "Please select the correct answer from the options above. \n"
    content = (f"Given the following question: {prompt}, the correct answer is: {label}. {options[label]}. Does "
               f"the following answer correctly answers the question, answer:{prediction}?")
    return JudgeRequest.user(f"{JUDGE_INSTRUCTION} {content}", temperature=0.2, top_p=0.8)


def judge_reply_score(reply: str) -> float:
    """HR-Bench ``parse_score``: 1 when the lower-cased reply starts with ``yes``."""
    m = _YES_NO.match(reply.lower())
    return float(bool(m) and m.group(0) == "yes")


class HRBench(Benchmark):
    stem = ""
    download = "huggingface.co/datasets/DreamMr/HR-Bench"
    official = "DreamMr/HR-Bench hrbench/vlmeval/dataset/image_mcq.py (HRBenchDataset.evaluate) + utils/hrbench.py"
    judged_variants = frozenset({"official"})

    # ---------------------------------------------------------------- reading
    def items(self, root: Path) -> Iterator[BenchItem]:
        path = C.find_first(Path(root), [f"{self.stem}.tsv", f"{self.stem}.parquet"], f"HR-Bench ({self.stem})")
        rows = C.iter_tsv(path, COLUMNS) if path.suffix == ".tsv" else C.iter_parquet(path, COLUMNS)
        for n, row in rows:
            where = f"{path}, row {n}"
            options = {L: C.cell(row, L) for L in "ABCD" if C.cell(row, L)}
            answer, raw_cat = C.cell(row, "answer"), C.cell(row, "category")
            if answer not in options:
                raise BenchmarkLayoutError(f"{where}: answer {answer!r} is not one of the options {list(options)}")
            if raw_cat not in NAMES:
                raise BenchmarkLayoutError(f"{where}: category {raw_cat!r} is not single or cross")
            yield BenchItem(
                id=f"{self.name}/{C.cell(row, 'index')}", question=mcq_prompt(C.cell(row, "question"), options),
                image=ImageRef(data=C.image_cell(row.get("image"), where)), answer=answer,
                category=NAMES[raw_cat], options=tuple(options.values()),
                meta={"cycle": C.cell(row, "cycle_category"), "raw_category": raw_cat,
                      "question_text": C.cell(row, "question"),
                      # the cells as the official judge prompt quotes them (unstripped)
                      "judge_question": str(row.get("question")),
                      "judge_options": {L: str(row.get(L)) for L in options}})

    # ---------------------------------------------------------------- sample tree
    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        """``<root>/<stem>.tsv`` and the parquet copy ``<root>/parquet/<stem>.parquet``: the same
        rows, ``n`` of them alternating single/cross, in ``n // 4`` (at least 1) cycles holding both."""
        root = Path(root)
        rows = []
        words = ["red", "blue", "green", "yellow"]
        for i in range(n):
            data, _ = C.sample_picture(seed * 1000 + i, size=(256, 192))
            rows.append({"index": i, "question": f"What color is the box in picture {i}?",
                         "answer": "ABCD"[(i + seed) % 4], "category": "single" if i % 2 == 0 else "cross",
                         **dict(zip("ABCD", words)), "cycle_category": str((i // 2) % max(1, n // 4)),
                         "image": C.b64(data)})
        C.write_tsv(root / f"{self.stem}.tsv", COLUMNS, rows)
        C.write_parquet(root / "parquet" / f"{self.stem}.parquet", [{k: r[k] for k in COLUMNS} for r in rows])

    # ---------------------------------------------------------------- scoring
    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        text = answer if answer is not None else response
        return can_infer(text.strip(), dict(zip("ABCD", item.options)))

    def judge(self, item: BenchItem, extracted: str) -> float:
        return float(extracted == item.answer)

    def llm_judge(self, item: BenchItem, response: str, answer: str | None) -> float | None:
        m = item.meta
        options = m.get("judge_options") or dict(zip("ABCD", item.options))
        request = judge_request(m.get("judge_question", m.get("question_text", "")), options, item.answer,
                                self.judge_text(response, answer))
        return judge_reply_score(self.llm.ask(request))

    def alternatives(self, item: BenchItem, response: str, answer: str | None) -> dict[str, float]:
        options = dict(zip("ABCD", item.options))
        pred = (answer if answer is not None else response).strip()
        return {"deepeyes_rule": C.deepeyes_rule(pred, item.answer, options.get(item.answer, "")),
                "lenient_letter": float(C.lenient_option(pred, options) == item.answer)}

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float]) -> dict[str, Any]:
        cycles: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for it, s in zip(items, scores):
            c = cycles[str(it.meta.get("cycle", ""))]
            c["all"].append(s)
            c[it.category].append(s)
        per_cycle = {k: {t: sum(v) / len(v) for t, v in d.items()} for k, d in sorted(cycles.items())}
        sums: dict[str, float] = defaultdict(float)
        for d in per_cycle.values():
            for t, v in d.items():
                sums[t] += v
        count = len(per_cycle) or 1
        counts: dict[str, int] = defaultdict(int)
        right: dict[str, float] = defaultdict(float)
        for it, s in zip(items, scores):
            counts[it.category] += 1
            right[it.category] += s
        plain = {c: right[c] / counts[c] for c in counts}
        n = len(scores)
        return {"overall": sums["all"] / count, "n": n,
                "categories": {t: {"score": sums[t] / count, "n": counts[t]} for t in ("FSP", "FCP") if counts[t]},
                "cycles": per_cycle, "per_question_mean": (sum(scores) / n) if n else 0.0,
                "fsp_fcp_mean": sum(plain.values()) / len(plain) if plain else 0.0}

    def table(self, result: dict[str, Any]) -> tuple[list[str], list[str]]:
        cats = result.get("categories", {})
        pick = lambda c: f"{100 * cats[c]['score']:.2f}" if c in cats else "-"  # noqa: E731
        return ["FSP", "FCP", "Overall"], [pick("FSP"), pick("FCP"), f"{100 * result['overall']:.2f}"]


@register
class HRBench4K(HRBench):
    name = "hrbench4k"
    stem = "hr_bench_4k"


@register
class HRBench8K(HRBench):
    name = "hrbench8k"
    stem = "hr_bench_8k"
