"""vlir's V* scoring on the released VLM-R3 checkpoint's own logged responses (shared/vlmr3: the
authors' evaluation log, 191 items with their full responses and the reward their evaluator gave).

vlir's rule-based letter rule must give the authors' per-item reward on every item, which means
their 161/191 (84.29 %; 100/115 attribute, 61/76 spatial) without an LLM: their LLM judge was only
needed where the model answered with an option's text ("right") instead of its letter. Their
verifier's rule path alone (``vlmr3_acc_verifier``, LLM off) gives 152, as does DeepEyes' rule path.
"""

from __future__ import annotations

import re

import pytest

from vlir.eval.benchmarks import base
from vlir.eval.benchmarks.base import BenchItem, ImageRef
from vlir.eval.benchmarks.runner import score_row
from vlir.eval.benchmarks.vstar import _OPTION_LINE

from tests.conftest import REPO

LOG = REPO.parent / "shared" / "vlmr3" / "evaluation_vstar_log_20250808_134358.txt"
pytestmark = pytest.mark.skipif(not LOG.is_file(), reason="needs ../shared/vlmr3 (the authors' V* log)")
BLOCK = re.compile(r"Iteration \d+:\nImage Path: (.*?)\nQuestion: (.*?)\nCategory: (.*?)\nFull Response:\n(.*?)\n"
                   r"Reward: ([\d.]+)\nGround Truth:\n<answer>(.*?)</answer>", re.S)


def test_vlir_rule_reproduces_the_authors_rewards():
    V = base.get("vstar")
    blocks = BLOCK.findall(LOG.read_text(encoding="utf-8"))
    assert len(blocks) == 191
    items, scores, alt, deepeyes = [], [], [], []
    for path, question, category, response, reward, label in blocks:
        options = [m.group(2) for m in map(_OPTION_LINE.match, question.splitlines()) if m]
        item = BenchItem(id=path, question=question, image=ImageRef(), answer=label, category=category,
                         options=tuple(options))
        row = score_row(V, item, response, [])
        assert row["score"] == float(reward), (path, row["extracted"], label)
        items.append(item)
        scores.append(row["score"])
        alt.append(row["alternatives"]["vlmr3_acc_verifier"])
        deepeyes.append(row["alternatives"]["deepeyes_rule"])
    res = V.aggregate(items, scores)
    assert round(res["overall"] * 191) == 161
    assert res["categories"]["direct_attributes"] == {"score": pytest.approx(100 / 115), "n": 115}
    assert res["categories"]["relative_position"] == {"score": pytest.approx(61 / 76), "n": 76}
    assert sum(alt) == 152  # their verifier without its LLM judge
    assert sum(deepeyes) == 152  # DeepEyes' rule path without its LLM judge
