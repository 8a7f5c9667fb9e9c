"""Conformance to the released VLM-R³ checkpoint, over every response of the authors' V* log
(``../shared/vlmr3``; skipped when absent): vlir.protocol finds the calls the authors' loop acts on
and the answer their evaluator scored, the ``vlmr3`` rewards give what the authors' functions give,
and the rewards read what ``vlir eval`` reads. The engine side is ``tests/test_rollout_vlmr3_log.py``.

The expectations are derived here without vlir.protocol: calls as flat ``{...}`` objects read by
``json.loads`` (every call in the log is one), the answer and the reward by the evaluator's
``acc_verifier`` (``src/eval/test_vstar_r3.py``) on its exact-match path.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.vlmr3_log import LOG, read_log
from vlir.protocol import parse_response
from vlir.train import rewards
from vlir.train.rewards import RewardSpec, compute_rewards

pytestmark = pytest.mark.skipif(not LOG.is_file(), reason="../shared/vlmr3 is absent")


@pytest.fixture(scope="module")
def items():
    return read_log()


def logged_calls(response: str) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in json.loads(blob)["bbox_2d"])
            for blob in re.findall(r"\{[^{}]*\}", response) if "bbox_2d" in blob]


def verifier_exact_path(response: str, truth: str) -> tuple[str, float | None]:
    """acc_verifier of test_vstar_r3.py up to the LLM judge: (student answer, reward or None)."""
    gt = re.search(r"<answer>(.*?)</answer>", truth).group(1).strip()
    found = re.findall(r"<answer>(.*?)</answer>", response, re.DOTALL)
    student = found[-1].strip() if found else response.strip().split("\n")[-1]
    for g in (x.strip() for x in gt.split("/")):
        if g.lower() == student.lower():
            return student, 1.0
        if len(g) == 1 and len(student) == 1:
            return student, 0.0
    return student, None


def test_the_log_holds_191_responses(items):
    assert len(items) == 191 and [it.index for it in items] == sorted({it.index for it in items})


def test_parse_response_finds_the_calls_the_loop_crops(items):
    doubled = 0
    for it in items:
        r = parse_response(it.response)
        assert r.calls == logged_calls(it.response), it.index
        assert r.bad_calls == [], it.index
        keys = it.response.count('"bbox_2d"')
        if keys > len(r.calls):  # {"bbox_2d": [a], "bbox_2d": [b]}: the loop crops b
            doubled += 1
            first = re.search(r'"bbox_2d": \[([^\]]*)\]', it.response).group(1)
            assert r.calls[0] != tuple(float(v) for v in first.split(",")), it.index
    assert doubled == 13


def test_parse_response_reads_the_answer_the_evaluator_scored(items):
    exact = judged = 0
    for it in items:
        student, reward = verifier_exact_path(it.response, it.truth)
        assert parse_response(it.response).answer == student, it.index
        if reward is None:
            judged += 1  # not an option letter: the authors' LLM judge decided
        else:
            exact += 1
            assert reward == it.reward, it.index
    assert exact + judged == 191 and judged == 10


def test_vlmr3_rewards_match_the_authors_functions_on_the_log(items):
    specs = [RewardSpec(n) for n in ("vlmr3/accuracy", "vlmr3/format", "vlmr3/repeat", "vlmr3/length")]
    gold = [[re.search(r"<answer>(.*?)</answer>", it.truth).group(1)] for it in items]
    raw, total = compute_rewards(specs, [it.response for it in items], answers=gold,
                                 source=["vstar"] * len(items), question=[it.question for it in items])
    for i, it in enumerate(items):
        student, reward = verifier_exact_path(it.response, it.truth)
        # the judge is off: its cases fall back to exact equality, as the authors' code on an API error
        expect = reward if reward is not None else float(student == gold[i][0])
        assert raw["vlmr3/accuracy"][i] == expect, it.index
        assert raw["vlmr3/format"][i] == 0.5, it.index  # every response ends "<answer>X</answer>\n"
        assert raw["vlmr3/repeat"][i] == 0.5 * expect, it.index  # each call parses; paid when correct
        assert raw["vlmr3/length"][i] == pytest.approx(expected_length(it.response)), it.index
        assert total[i] == pytest.approx(sum(raw[s.name][i] for s in specs))


def expected_length(response: str) -> float:
    """The length reward for the log's shape ``<think> A\\n\\n{call}\\nB\\n\\n<answer>..``: the
    shorter of A and B (B empty when the answer follows the crop), whitespace collapsed; a call
    with the key twice is not split by the authors' pattern (one segment)."""
    head = response.split("<answer>")[0].replace("<think>", "")
    call = re.search(r"\{[^{}]*\}", head).group(0)
    if call.count("bbox_2d") > 1:
        parts = [head]
    else:
        parts = head.split(call)
    shortest = min(len(" ".join(p.split())) for p in parts)
    return min(0.1, 0.01 * shortest)


def test_rewards_read_the_answer_and_boxes_eval_reads(items):
    for it in items:
        r = parse_response(it.response)
        assert rewards.extract_answer(it.response) == r.answer
        assert rewards.parse_boxes(it.response) == ([list(b) for b in r.calls], True)
