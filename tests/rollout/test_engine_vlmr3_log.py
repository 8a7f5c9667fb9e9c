"""The engine, under the released agent's preset, forced through every logged response of the
released VLM-R³ checkpoint (``../shared/vlmr3``; skipped when absent): it inserts the crop exactly
where the authors' loop inserted it (right after the call's ``]}``, behind the ``\\n`` the loop
writes), crops the box the loop crops (the last one of a call holding the key twice) and ends with
the answer the authors' evaluator scored.

The tiny random model writes the texts (:class:`vlir.testing.scripted.ScriptedLogits`); the images are
synthetic, so each call's numbers are scaled into the tiny model's view of a 224x168 image. All 191
responses run in two batched calls.
"""

from __future__ import annotations

import math
import re

import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from tests.rollout_helpers import tiny  # noqa: E402
from tests.vlmr3_log import LOG, read_log  # noqa: E402
from vlir import geometry  # noqa: E402
from vlir.geometry import PixelBudget  # noqa: E402
from vlir.protocol import parse_response  # noqa: E402
from vlir.rollout import Rollout, RolloutConfig  # noqa: E402
from vlir.testing.scripted import ScriptedLogits  # noqa: E402
from vlir.models import model_budget  # noqa: E402

pytestmark = pytest.mark.skipif(not LOG.is_file(), reason="../shared/vlmr3 is absent")

WIDTH, HEIGHT = 224, 168
CALL = re.compile(r"\{[^{}]*\}")


def scaled(response: str, frame: tuple[int, int]) -> str:
    """``response`` with every number of its call scaled into ``frame`` (model pixels), each box
    kept at least one pixel wide and tall."""
    call = CALL.search(response).group(0)
    boxes = [[int(v) for v in b.split(",")] for b in re.findall(r"\[([^\]]*)\]", call)]
    s = min((frame[0] - 1) / max(b[2] for b in boxes), (frame[1] - 1) / max(b[3] for b in boxes))
    new = call
    for b in boxes:
        x1, y1 = math.floor(b[0] * s), math.floor(b[1] * s)
        x2, y2 = max(x1 + 1, math.ceil(b[2] * s)), max(y1 + 1, math.ceil(b[3] * s))
        new = new.replace("[" + ", ".join(map(str, b)) + "]", f"[{x1}, {y1}, {x2}, {y2}]", 1)
    return response.replace(call, new)


@pytest.mark.slow
def test_the_engine_crops_where_the_authors_loop_does_and_ends_with_their_answer():
    model, processor = tiny()
    budget = model_budget(processor)
    frame = geometry.model_size(WIDTH, HEIGHT, budget)
    image = Image.new("RGB", (WIDTH, HEIGHT), (90, 140, 200))
    items = read_log()
    scripts, expect = {}, []
    for it in items:
        text = scaled(it.response, frame)
        cut = text.index("]}\n") + 2  # the loop stopped at "]}" and wrote "]}\n" before the crop
        first, rest = text[:cut], text[cut + 1:].rstrip("\n")
        scripts[f"[item {it.index:03d}]"] = [first, rest]
        r = parse_response(text)
        expect.append((first, rest, r.calls, r.answer))
    config = RolloutConfig.preset("vlmr3", temperature=0.0, max_new_tokens=400,
                                  crop_budget=PixelBudget(3136, 4 * 3136),
                                  logits_processor=ScriptedLogits(processor, by_question=scripts, image_newline=True))
    engine = Rollout(model, processor, config)
    trajs = []
    for batch in (items[:96], items[96:]):
        trajs += engine.generate([(f"[item {it.index:03d}] {it.question}", image) for it in batch])
    assert len(trajs) == 191
    for it, t, (first, rest, calls, answer) in zip(items, trajs, expect):
        assert t.finish_reason == "answer" and t.bad_calls == [], it.index
        assert len(t.crops) == 1 and len(calls) == 1, it.index
        before, after = t.text.split("<|vision_start|><|image_pad|><|vision_end|>")
        assert before == first + "\n", it.index  # the crop right after the call's "]}" and the loop's "\n"
        assert after == "\n" + rest, it.index  # the "\n" the agent renders after <|vision_end|>, then the model
        assert t.boxes[0] == geometry.clip(geometry.from_model(calls[0], WIDTH, HEIGHT, budget), WIDTH, HEIGHT)
        assert t.answer == answer == parse_response(it.response).answer, it.index
