"""``vlir eval`` and the R-GRPO rewards read the same trajectories the same way: one answer, one
set of boxes (both through vlir.protocol). Fed the same engine output, tricky texts included (a
call with the key twice, an unclosed answer ended by EOS, a bad call skipped, no answer tag)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from tests.conftest import make_image  # noqa: E402
from tests.rollout_helpers import tiny  # noqa: E402
from vlir import geometry  # noqa: E402
from vlir.eval import evaluate  # noqa: E402
from vlir.records import Sample  # noqa: E402
from vlir.rollout import Rollout, RolloutConfig  # noqa: E402
from vlir.testing.scripted import ScriptedLogits  # noqa: E402
from vlir.train import rewards  # noqa: E402
from vlir.models import model_budget  # noqa: E402

SCRIPTS = {
    "q0": ['<think> look\n\n{"bbox_2d": [10, 10, 40, 40], "bbox_2d": [60, 50, 150, 120]}', "<answer>red</answer>"],
    "q1": ['<think> {"bbox_2d": [30, 20, 150, 130]}', " it is <answer>red<|im_end|>"],
    "q2": ['<think> {"bbox_2d": [90, 90, 20, 20]} no, {"bbox_2d": [30, 20, 150, 130]}', " so\n<answer>blue</answer>"],
    "q3": ["<think> I am not sure\nred<|im_end|>"],
}


class Recording:
    """The engine, keeping what it returned."""

    def __init__(self, engine):
        self.engine, self.trajs = engine, []
        self.settings = engine.settings

    def generate(self, prompts, num_samples=1):
        out = self.engine.generate(prompts, num_samples)
        self.trajs += out
        return out


def test_eval_and_rewards_read_the_same_answer_and_boxes(tmp_path):
    model, processor = tiny()
    image = make_image()
    engine = Recording(Rollout(model, processor, RolloutConfig(
        temperature=0.0, max_new_tokens=80, logits_processor=ScriptedLogits(processor, by_question=SCRIPTS))))
    items = [(Sample(id=f"gqa/val/{i}", source="gqa", split="val", image=f"{i}.png", width=image.width,
                     height=image.height, question=q, answers=("red",)), image) for i, q in enumerate(SCRIPTS)]
    scores = evaluate.evaluate(engine, items, tmp_path, batch_size=4)
    rows = [json.loads(line) for line in (tmp_path / evaluate.PREDICTIONS).read_text().splitlines()]
    texts = [t.text for t in engine.trajs]
    budget = model_budget(processor)
    for row, t in zip(rows, engine.trajs):
        assert rewards.extract_answer(t.text) == row["answer"]
        boxes, _ = rewards.parse_boxes(t.text)
        mapped = [geometry.clip(geometry.from_model(b, image.width, image.height, budget), image.width,
                                image.height).as_list() for b in boxes]
        assert mapped == row["boxes"]
    assert [r["answer"] for r in rows] == ["red", "red", "blue", "red"]
    assert [len(r["boxes"]) for r in rows] == [1, 1, 1, 0] and rows[2]["bad_calls"] == 1
    acc = rewards.accuracy_reward(texts, answers=[["red"]] * 4, source=["gqa"] * 4)
    assert acc == [r["score"] for r in rows] == [1.0, 1.0, 0.0, 1.0]
    assert scores["agent"]["bad_box"] == "skip"
