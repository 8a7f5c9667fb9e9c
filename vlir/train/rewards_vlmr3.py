"""The released VLM-R³ reward set, as its R-GRPO run computes it: ``vlmr3/accuracy``,
``vlmr3/format``, ``vlmr3/repeat``, ``vlmr3/length``.

Each reproduces the function of the same name in ``src/r1-v/src/open_r1/rgrpo.py``
(justgogorunrun/VLM-R3) and what its trainer (``vllm_rgrpo_trainer.py``) does around it, so R-GRPO
started from the released checkpoint gets the signal it was trained with. Values are the authors'
own magnitudes (accuracy 1, format 0.5, repeat 0.5, length up to 0.1): give each weight 1.0.

What the authors' functions see, and so what these do first: the completion decoded with
``skip_special_tokens=True`` (crop images and ``<|im_end|>`` gone: :func:`vlir.protocol.strip_special`).
Columns: vlir's ``answers`` list stands for the authors' one ``solution`` string, joined with
``"/"`` (their ground truths list alternatives that way and their verifiers split on it); a
``solution`` column, if the data has one (``"<answer> X </answer>"``), is used as is. ``question``
is their ``problem``.

Where they differ from the authors' code, on purpose:
- the LLM judge their accuracy falls back to (qwen2.5-72b-instruct over DashScope) is off by
  default: the fallback is then what their code does when the API call fails (exact string
  equality). Turn it on with ``kwargs: {judge: {base_url, model, api_key_env}}`` in the recipe;
  verdicts are cached in SQLite (``cache``), so a rerun never pays twice.
- source ``MMK12`` (math_verify) is refused with a clear error: vlir has no such source.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from vlir.protocol import strip_special
from vlir.train.rewards import register

log = logging.getLogger(__name__)

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_SOLUTION = re.compile(r"<answer>(.*?)</answer>")  # the authors read the solution without DOTALL
_FORMAT = re.compile(r".*?<answer>.*?</answer>\s*", re.DOTALL)
_JSON = re.compile(r"\{.*?\}", re.DOTALL)
_LENGTH_BBOX = re.compile(r'\{"bbox_2d":\s*\[[^\]]*\]\}')
JUDGE_PROMPT = (
    "You are a evaluation expert. Compare the student's answer with the correct answer. Output ONLY '1.0' "
    "if the student's answer matches the correct answer in meaning, or '0.0' if the student's answer does "
    "not contain a correct answer. No other output is allowed.\n                    Question: {problem}\n"
    "Student's answer: {student}\nCorrect answer: {truth}\nOutput only 1.0 or 0.0:")


# --------------------------------------------------------------------------------------------
# The optional LLM judge
# --------------------------------------------------------------------------------------------

@dataclass
class Judge:
    """An OpenAI-compatible chat endpoint asked, as the authors ask qwen2.5-72b-instruct, whether a
    student answer matches the truth; verdicts cached in SQLite under ``cache`` keyed by (model,
    prompt). The API key is read from the environment variable ``api_key_env`` and stored nowhere."""

    model: str = "qwen2.5-72b-instruct"
    base_url: str = "https://dashscope.aliyuncs.com/compatible-mode/v1"
    api_key_env: str = "API_KEY"
    cache: str = "out/cache/vlmr3_judge.sqlite"
    timeout: float = 60.0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._client = None
        Path(self.cache).parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.cache) as db:
            db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, value REAL)")

    def __call__(self, student: str, truth: str, problem: str) -> float:
        """1.0 / 0.0 by the judge; on an API error, exact equality (as the authors' except branch)."""
        prompt = JUDGE_PROMPT.format(problem=problem, student=student, truth=truth)
        key = hashlib.sha256(json.dumps([self.model, prompt]).encode()).hexdigest()
        with self._lock, sqlite3.connect(self.cache) as db:
            row = db.execute("SELECT value FROM verdicts WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return float(row[0])
        try:
            result = self._ask(prompt)
            value = 0.0 if "1.0" not in result and "0.0" not in result else float(result)
        except Exception as exc:  # noqa: BLE001  (the authors fall back on any failure)
            log.warning("vlmr3 judge failed (%s): exact match instead", exc)
            return 1.0 if student == truth else 0.0
        with self._lock, sqlite3.connect(self.cache) as db:
            db.execute("INSERT OR REPLACE INTO verdicts VALUES (?, ?)", (key, value))
        return value

    def _ask(self, prompt: str) -> str:
        if self._client is None:  # the shared LLM client: key from the env, retries, breaker
            from vlir.llm.client import ChatCaller
            from vlir.llm.retry import RetryPolicy

            self._client = ChatCaller(self.model, self.base_url, api_key_env=self.api_key_env,
                                      timeout_s=self.timeout, policy=RetryPolicy(max_retries=2))
        reply = self._client.create(messages=[{"role": "user", "content": prompt}], temperature=0)
        return (reply.choices[0].message.content or "").strip()


def _judge(spec: "Judge | dict | None") -> "Judge | None":
    if spec is None or isinstance(spec, Judge):
        return spec
    if not isinstance(spec, dict):
        raise ValueError(f"vlmr3/accuracy: judge must be a mapping (model, base_url, api_key_env, cache), got {spec!r}")
    return Judge(**spec)


def _no_judge(student: str, truth: str, problem: str) -> float:
    return 1.0 if student == truth else 0.0


# --------------------------------------------------------------------------------------------
# The authors' verifiers
# --------------------------------------------------------------------------------------------

def _student(content: str) -> str:
    found = _ANSWER.findall(content)
    return found[-1].strip() if found else content.strip().split("\n")[-1]


def _truth(solution: str) -> str:
    m = _SOLUTION.search(solution)
    return m.group(1).strip() if m else solution.strip()


def acc_verifier(content: str, solution: str, problem: str, judge=_no_judge) -> float:
    """``acc_verifier`` of rgrpo.py: case-*sensitive* equality with any ``/``-separated truth; two
    different single characters score 0 at once; otherwise the judge. (The V* evaluator's copy in
    ``test_vstar_r3.py`` compares case-insensitively.)"""
    student = _student(content)
    for gt in (g.strip() for g in _truth(solution).split("/")):
        if gt == student:
            return 1.0
        if len(gt) == 1 and len(student) == 1 and gt.lower() != student.lower():
            return 0.0
    return judge(student, _truth(solution), problem)


def textvqa_verifier(content: str, solution: str, problem: str, judge=_no_judge) -> float:
    """``textvqa_reward`` of rgrpo.py: EvalAI-normalised equality (``vlir.metrics.normalize_answer``,
    the same mmf processor the authors copied), a yes/no truth found in a short answer that does
    not hold both, else the judge."""
    from vlir.metrics import normalize_answer

    student = _student(content).lower()
    for gt in (g.strip().lower() for g in _truth(solution).split("/")):
        gt = normalize_answer(gt)
        student = normalize_answer(student)  # re-applied per truth, as theirs is
        if gt == student:
            return 1.0
        if gt in ("yes", "no") and gt in student and not ("yes" in student and "no" in student) \
                and len(student) < 48:
            return 1.0
    return judge(student, _truth(solution), problem)


def _solutions(n: int, answers, solution) -> list[str]:
    if solution is not None:
        return [str(s) for s in solution]
    if answers is None:
        raise ValueError("vlmr3 rewards need the gold answers: an 'answers' (or 'solution') column")
    return ["/".join(str(a) for a in gold) if not isinstance(gold, str) else gold for gold in answers]


@register("vlmr3/accuracy")
def accuracy(completions: Sequence[str], answers: Sequence[Sequence[str]] | None = None,
             source: Sequence[str] | None = None, question: Sequence[str] | None = None,
             solution: Sequence[str] | None = None, judge: "Judge | dict | None" = None,
             **kwargs: Any) -> list[float]:
    """rgrpo.py's ``accuracy_reward``: ``textvqa`` by :func:`textvqa_verifier`, every other source
    by :func:`acc_verifier`, clamped to [0, 1]. The judge is off unless ``judge`` is given.

    >>> accuracy(["<think> x\\n<answer>B</answer>", "<answer>b</answer>", "so\\nB"], answers=[["B"]] * 3,
    ...          source=["vstar"] * 3, question=["?"] * 3)
    [1.0, 0.0, 1.0]
    """
    sols = _solutions(len(completions), answers, solution)
    sources = list(source) if source is not None else [""] * len(completions)
    problems = list(question) if question is not None else [""] * len(completions)
    ask = _judge(judge) or _no_judge
    out = []
    for text, sol, src, problem in zip(completions, sols, sources, problems, strict=True):
        content = strip_special(text)
        if src == "MMK12":
            raise ValueError("vlmr3/accuracy: source MMK12 is scored by math_verify in the authors' code; "
                             "vlir has no MMK12 source and does not reproduce it")
        verify = textvqa_verifier if src == "textvqa" else acc_verifier
        out.append(max(0.0, min(verify(content, sol, problem, ask), 1.0)))
    return out


@register("vlmr3/format")
def format_(completions: Sequence[str], **kwargs: Any) -> list[float]:
    """rgrpo.py's ``format_reward``: 0.5 when the text is anything, then ``<answer>…</answer>``, then
    only whitespace; no ``<think>`` needed (the released model rarely closes it).

    >>> format_(["<think> look\\n<answer>A</answer>\\n", "<think> A </think>", "<answer>A</answer> ok"])
    [0.5, 0.0, 0.0]
    """
    return [0.5 if _FORMAT.fullmatch(strip_special(t)) else 0.0 for t in completions]


@register("vlmr3/repeat")
def repeat(completions: Sequence[str], rewards: dict[str, list] | None = None, **columns: Any) -> list[float]:
    """rgrpo.py's ``repeat_reward`` with its trainer's gate: 0.5 when the text holds at least one
    ``{...}`` mentioning ``bbox`` and every such object parses with a ``bbox_2d`` key; 0 when one
    fails; then 0 unless accuracy is 1.0 (``rewards["vlmr3/accuracy"]``, computed here when the
    recipe lists ``vlmr3/repeat`` without it before).

    >>> repeat(['{"bbox_2d": [1, 2, 3, 4]}\\n<answer>A</answer>', '<answer>A</answer>',
    ...         '{"bbox_2d": [1, 2, 3, 4]} {"bbox": [1}\\n<answer>A</answer>'], rewards={"vlmr3/accuracy": [1.0] * 3})
    [0.5, 0.0, 0.0]
    """
    correct = (rewards or {}).get("vlmr3/accuracy")
    if correct is None:
        correct = accuracy(completions, **columns)
    out = []
    for text, acc in zip(completions, correct, strict=True):
        distinct: set[str] = set()
        ok = True
        for blob in _JSON.findall(strip_special(text)):
            if "bbox" not in blob:
                continue
            try:
                op = json.loads(blob)
                op["bbox_2d"]
                distinct.add(json.dumps(op, sort_keys=True))
            except Exception:  # noqa: BLE001  (the authors catch everything: any failure fails all)
                ok = False
                break
        value = 0.5 * min(1, len(distinct)) if ok else 0.0
        out.append(value if acc == 1.0 else 0.0)
    return out


@register("vlmr3/length")
def length(completions: Sequence[str], **kwargs: Any) -> list[float]:
    """rgrpo.py's ``length_reward``: ``min(0.10, 0.01 * characters)`` of the shortest reasoning
    segment: the text before the first ``<answer>``, think tags removed, whitespace collapsed,
    split at each call their pattern matches (``{"bbox_2d":`` exactly, then ``[...]}``); empty
    inner segments dropped, the first and last kept even when empty (so the released model's
    usual "crop, then answer" scores 0).

    >>> length(['<think> the glove is here\\n\\n{"bbox_2d": [1, 2, 3, 4]}\\n<answer>A</answer>',
    ...         '<think> ab {"bbox_2d": [1, 2, 3, 4]} it is A <answer>A</answer>'])
    [0.0, 0.02]
    """
    out = []
    for text in completions:
        thinking = strip_special(text).split("<answer>")[0].strip().replace("<think>", "").replace("</think>", "")
        thinking = re.sub(r"\s+", " ", thinking).strip()
        parts = _LENGTH_BBOX.split(thinking)
        kept = [p.strip() for i, p in enumerate(parts) if p.strip() or i in (0, len(parts) - 1)]
        shortest = min((len(p) for p in kept), default=0)
        out.append(max(0.0, min(0.10, shortest * 0.01)))
    return out
