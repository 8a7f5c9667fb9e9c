"""MMVP (Multimodal Visual Patterns, Tong et al. 2024): 150 pairs of CLIP-blind images, one
two-option question per image, the two questions of a pair asked of two images with opposite
answers.

Official layout (https://huggingface.co/datasets/MMVP/MMVP)::

    Questions.csv          Index,Question,Options,Correct Answer   e.g. 1,...,"(a) Open (b) Closed",(a)
    MMVP Images/<Index>.jpg

Scoring follows ``tsb0601/MMVP`` ``scripts/gpt_grader.py``: the official metric is **pair
accuracy**, a pair (indices 1-2, 3-4, ...) counts only if both of its questions are right. The
official per-question grade is a GPT-4 yes/no judgement of the full response against the correct
answer; vlir's default is **rule-based** instead, as ``cambrian-mllm/cambrian``
``eval/eval/mmvp/mmvp_test.py`` (the same authors' later scorer) does it: lower-case, keep what
follows the last "answer is"/"answer:", strip ``.:,`` and brackets, then the option letter or the
option text must match (quirk kept: the keywords are tried in order, so "The answer is: B" is
split at "answer is" and leaves ": b", which does not match). With a judge
(``configure(judge=...)``, ``--judge-model``) the official GPT grading runs instead, as
``tsb0601/MMVP@763500597e65c3446f09047837ceda76f4e264bf`` ``scripts/gpt_grader.py`` calls it
(:func:`grader_request`): the system message "You are a helpful and precise assistant for
checking the quality of the answer. Please answer in only yes or no.", the user message
``Given the following question {prompt}, the correct answer is {answer}. Does the following
answer correctly answers the question, answer:{response}?`` with ``prompt`` = ``Question + " " +
Options`` and ``answer`` = ``Correct Answer`` as ``scripts/evaluate_mllm.py`` writes them,
``temperature=0.2``, no token cap; the reply counts only when it matches ``^(yes|no)$`` and is
"yes" lower-cased. ``response`` is the whole response, stripped (``evaluate_mllm.py`` strips the
output it stores); ``configure(judge_input="answer")`` (``--judge-input answer``) sends only the
``<answer>`` content instead (an explicit vlir option, not the grader's).

Per-question accuracy is reported next to it, labelled as what VLM-R3 reports
(``justgogorunrun/VLM-R3`` ``src/eval/test_mmvp_r3.py``: correct / 300, no pairing). That script's
own per-item rule is available as ``configure(variant="vlmr3")`` (see :func:`vlmr3_verify`).

Quirks kept or chosen: the CSV header of the HF copy spells ``lndex`` (lower-case L) in some
revisions, both are read; the official generator reads ``MMVP Imgaes`` (sic) by row order, vlir
reads ``MMVP Images/<Index>.jpg``; a pair with one question missing (a subset run) is left out of
pair accuracy and counted in ``incomplete_pairs`` (the official loop drops a trailing odd one).
lmms-eval's copy (``lmms-lab-eval/MMVP``) corrects four answers (99/100, 279/280); vlir scores
the file it is given.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, register
from vlir.eval.benchmarks.judge import JudgeRequest

LLMJudge = Callable[[str], str]

QUESTIONS = "Questions.csv"
IMAGES = "MMVP Images"
INSTRUCTION = "Answer with the option's letter from the given choices directly."
_OPTION = re.compile(r"(?:^|\s)\(([a-e])\)\s*", re.IGNORECASE)  # "dog(s)" is not a marker


def parse_options(text: str) -> tuple[str, ...]:
    """``"(a) Open (b) Closed"`` -> ``("Open", "Closed")``."""
    parts = _OPTION.split(text)
    # split() gives [before, letter, text, letter, text, ...]
    return tuple(parts[i + 1].strip() for i in range(1, len(parts) - 1, 2))


def cambrian_extract(text: str) -> str:
    """The rule of Cambrian's ``mmvp_test.py``: lower-case, keep what follows the last answer
    keyword, strip trailing ``.:,``, then leading ``(`` and trailing ``)``."""
    text = text.lower().strip()
    for keyword in ("answer is", "answer is:", "answer:"):
        if keyword in text:
            text = text.split(keyword)[-1]
    return text.strip().rstrip(".:,").lstrip("(").rstrip(")")


# --- VLM-R3's verifier, shared by its MMVP and CV-Bench scripts (cvbench.py imports it) -------

VLMR3_JUDGE_PROMPT = (
    "You are a evaluation expert. Compare the student's answer with the correct answer. Output "
    "ONLY '1.0' if the student's answer matches the correct answer in meaning, or '0.0' if the "
    "student's answer does not contain a correct answer. No other output is allowed.\n"
    "                    Question: {problem}\nStudent's answer: {student}\nCorrect answer: "
    "{truth}\nOutput only 1.0 or 0.0:")
VLMR3_STRIPPED = ("Answer the question with Yes or No.",
                  "Answer the question using a single word or phrase.",
                  "Answer with the option's letter from the given choices.")


def vlmr3_student_answer(response: str, answer: str | None) -> str:
    """VLM-R3's student answer: the last ``<answer>`` content, else the response's last line."""
    if answer is not None:
        return answer.strip()
    tags = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    return tags[-1].strip() if tags else response.strip().split("\n")[-1]


def vlmr3_scoring(script: str, judged: bool) -> str:
    """The ``scoring`` line of a ``vlmr3`` variant graded by :func:`vlmr3_verify` (mmvp, cvbench)."""
    return f"VLM-R3 {script} acc_verifier" + (" + LLM judge" if judged else " (no judge: exact match)")


def vlmr3_verify(student: str, truth: str, problem: str, llm_judge: LLMJudge | None) -> float:
    """``acc_verifier`` of VLM-R3's test_mmvp_r3.py / test_cvbench_r3.py: for each ``/``-separated
    truth, case-insensitive equality is 1; two different single characters are 0; otherwise the LLM
    decides (reply containing neither "1.0" nor "0.0" -> 0; with no judge, or when the call fails,
    their fallback: exact, case-sensitive equality)."""
    for gt in (t.strip() for t in truth.split("/")):
        if gt.lower() == student.lower():
            return 1.0
        if len(gt) == 1 and len(student) == 1:
            return 0.0
    if llm_judge is None:
        return float(student == truth)
    for phrase in VLMR3_STRIPPED:
        problem = problem.replace(phrase, "")
    try:
        reply = llm_judge(VLMR3_JUDGE_PROMPT.format(problem=problem.strip(), student=student,
                                                    truth=truth)).strip()
    except Exception:  # noqa: BLE001 - their script falls back on any API error
        return float(student == truth)
    if "1.0" not in reply and "0.0" not in reply:
        return 0.0
    try:
        return float(reply)
    except ValueError:  # e.g. "Score: 1.0": their float() raises inside the try -> the fallback
        return float(student == truth)


# --- the benchmark ------------------------------------------------------------------------------

GRADER_SYSTEM = ("You are a helpful and precise assistant for checking the quality of the answer. "
                 "Please answer in only yes or no.")
GRADER_PROMPT = ("Given the following question {question}, the correct answer is {correct}. Does "
                 "the following answer correctly answers the question, answer:{response}?")
_YES_NO = re.compile(r"^(yes|no)$", re.IGNORECASE)


def grader_request(question: str, correct: str, response: str) -> JudgeRequest:
    """The call ``scripts/gpt_grader.py`` makes for one answer-file line (see the module docstring)."""
    return JudgeRequest([{"role": "system", "content": GRADER_SYSTEM},
                         {"role": "user", "content": GRADER_PROMPT.format(question=question, correct=correct,
                                                                          response=response)}],
                        temperature=0.2)


def grade(reply: str) -> float:
    """gpt_grader.py's verdict: the unstripped reply must match ``^(yes|no)$`` and be "yes"."""
    return float(bool(_YES_NO.match(reply)) and reply.lower() == "yes")


def llm_callable(bench: Benchmark) -> LLMJudge | None:
    """VLM-R3's judge step (mmvp, cvbench ``vlmr3`` variants): the prompt as one user message at
    temperature 0 through the configured judge; None without one."""
    if bench.llm is None:
        return None
    return lambda prompt: bench.llm.ask(JudgeRequest.user(prompt, temperature=0.0))


@register
class MMVP(Benchmark):
    """MMVP reader and scorer; ``configure()`` picks the LLM judge and the variant."""

    name = "mmvp"
    official = "tsb0601/MMVP scripts/gpt_grader.py (pairs); rule path: cambrian eval/eval/mmvp/mmvp_test.py"
    variants = ("official", "vlmr3")
    judged_variants = frozenset(variants)

    @property
    def scoring(self) -> str:
        """One line saying how items are graded (for scores.json / report.md)."""
        if self.variant == "vlmr3":
            return vlmr3_scoring("test_mmvp_r3.py", self.llm is not None)
        if self.llm is not None:
            return (f"official GPT grader (gpt_grader.py messages, temperature 0.2) via LLM judge, shown the "
                    f"{'whole response' if self.judge_input == 'response' else '<answer> content'}")
        return "rule-based (Cambrian mmvp_test.py letter/text match), not the official GPT grader"

    # --- reader ----------------------------------------------------------------------------------

    def items(self, root: Path) -> Iterator[BenchItem]:
        root = Path(root)
        csv_path = root / QUESTIONS
        if not csv_path.is_file():
            raise BenchmarkLayoutError(f"{csv_path}: not found (MMVP expects {QUESTIONS} and "
                                       f"'{IMAGES}/<Index>.jpg' under --root)")
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            index_col = "Index" if "Index" in header else "lndex" if "lndex" in header else None
            missing = [c for c in ("Question", "Options", "Correct Answer") if c not in header]
            if index_col is None or missing:
                raise BenchmarkLayoutError(f"{csv_path}: header {header} lacks "
                                           f"{(['Index'] if index_col is None else []) + missing}")
            for line, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
                cells = {(k or "").strip(): v or "" for k, v in raw.items()}  # as pandas reads them
                yield self._item(root, csv_path, line, row, index_col, cells)

    def _item(self, root: Path, csv_path: Path, line: int, row: dict[str, str], index_col: str,
              cells: dict[str, str]) -> BenchItem:
        try:
            index = int(row[index_col])
        except ValueError:
            raise BenchmarkLayoutError(f"{csv_path}: line {line}: {index_col} {row[index_col]!r} "
                                       f"is not an integer") from None
        options = parse_options(row["Options"])
        letter = cambrian_extract(row["Correct Answer"])
        if len(options) < 2 or letter not in [chr(ord("a") + i) for i in range(len(options))]:
            raise BenchmarkLayoutError(f"{csv_path}: line {line}: options {row['Options']!r} / "
                                       f"answer {row['Correct Answer']!r} are not '(a) .. (b) ..' / '(x)'")
        image = root / IMAGES / f"{index}.jpg"
        if not image.is_file():
            raise BenchmarkLayoutError(f"{image}: image of question {index} not found")
        official_prompt = f"{cells['Question']} {cells['Options']}"  # evaluate_mllm.py's "prompt"
        return BenchItem(
            id=f"mmvp/{index}", question=f"{row['Question']} {row['Options']}\n{INSTRUCTION}",
            image=ImageRef(path=image), answer=letter, options=options,
            meta={"index": index, "pair": (index - 1) // 2, "official_prompt": official_prompt,
                  "correct_answer": cells["Correct Answer"],
                  "vlmr3_prompt": "Answer with the option's letter from the given choices.\n"
                                  f"{row['Question']}\n{row['Options']}"})

    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        """``n`` questions (rounded up to whole pairs) in the official layout."""
        from PIL import Image, ImageDraw

        root = Path(root)
        (root / IMAGES).mkdir(parents=True, exist_ok=True)
        pairs = max(1, (n + 1) // 2)
        with open(root / QUESTIONS, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["Index", "Question", "Options", "Correct Answer"])
            for p in range(pairs):
                for k in range(2):
                    index = 2 * p + k + 1
                    side = "left" if (p + k + seed) % 2 == 0 else "right"
                    writer.writerow([index, "Is the red square on the left or the right?",
                                     "(a) Left (b) Right", "(a)" if side == "left" else "(b)"])
                    img = Image.new("RGB", (224, 224), (235, 235, 235))
                    x = 20 if side == "left" else 140
                    ImageDraw.Draw(img).rectangle((x, 80, x + 60, 140), fill=(210, 30, 30))
                    img.save(root / IMAGES / f"{index}.jpg", quality=90)

    # --- scoring ---------------------------------------------------------------------------------

    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        if self.variant == "vlmr3":
            return vlmr3_student_answer(response, answer)
        return cambrian_extract(answer if answer is not None else response)

    def judge(self, item: BenchItem, extracted: str) -> float:
        if self.variant == "vlmr3":
            return vlmr3_verify(extracted, item.answer, item.meta["vlmr3_prompt"], llm_callable(self))
        letter_ok = extracted == item.answer
        text = item.options[ord(item.answer) - ord("a")].lower()
        return float(letter_ok or extracted == text)

    def llm_judge(self, item: BenchItem, response: str, answer: str | None) -> float | None:
        if self.variant == "vlmr3":
            return None  # VLM-R3's judge runs inside judge(), only where its rule does not decide
        request = grader_request(item.meta["official_prompt"], item.meta["correct_answer"],
                                 self.judge_text(response, answer).strip())
        return grade(self.llm.ask(request))

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float]) -> dict[str, Any]:
        pairs: dict[int, list[float]] = {}
        for it, s in zip(items, scores):
            pairs.setdefault(it.meta["pair"], []).append(s)
        complete = [v for v in pairs.values() if len(v) == 2]
        both = sum(1 for v in complete if all(s == 1.0 for s in v))
        n = len(scores)
        pair_acc = both / len(complete) if complete else 0.0
        question_acc = sum(scores) / n if n else 0.0
        return {
            "overall": pair_acc, "n": n, "metric": "pair accuracy (official)", "scoring": self.scoring,
            "pair_accuracy": pair_acc, "pairs": len(complete), "pairs_correct": both,
            "incomplete_pairs": len(pairs) - len(complete),
            "question_accuracy": question_acc,
            "question_accuracy_label": "per-question accuracy (what VLM-R3's test_mmvp_r3.py reports)",
            "categories": {"pairs (official)": {"score": pair_acc, "n": len(complete)},
                           "questions (VLM-R3)": {"score": question_acc, "n": n}},
        }
