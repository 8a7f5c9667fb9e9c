"""The served engine's loop against a scripted stand-in for the server (no vLLM): what it sends
each round, how it reads each answer, and how it keeps the server's token ids."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import make_image
from vlir.geometry import PixelBudget
from vlir.rollout.config import RolloutConfig
from vlir.rollout.served import IMAGE_TEXT, ServedRollout, checkpoint_budget, literal_regex, scripted_rounds
from vlir.serving.vllm_env import parse_metrics

BUDGET = PixelBudget(3136, 200704)


class FakeServer:
    """``client.chat.completions.create``: answers from ``replies`` in order, keeps the requests.
    A reply is ``(text, finish_reason, stop_reason, n_tokens)``; prompt ids grow by the text's
    length in fake tokens, so tracking can be checked (``retokenize`` breaks that on purpose)."""

    def __init__(self, replies, retokenize=False):
        self.replies, self.requests, self.retokenize = list(replies), [], retokenize
        self.chat = self.completions = self
        self._ids: list[int] = []

    def create(self, **kwargs):
        self.requests.append(kwargs)
        text, finish, stop, n = self.replies.pop(0)
        prompt = self._ids + [7] if self._ids else list(range(100))
        if self.retokenize and self._ids:
            prompt = prompt[:-3] + [8, 8, 8, 7]
        sampled = list(range(1000, 1000 + n))
        self._ids = prompt + sampled
        data = {"choices": [{"message": {"content": text}, "finish_reason": finish, "stop_reason": stop,
                             "token_ids": sampled}],
                "usage": {"prompt_tokens": len(prompt), "completion_tokens": n}, "prompt_token_ids": prompt}
        return type("R", (), {"model_dump": lambda self_: data})()


def engine(replies, retokenize=False, **config):
    server = FakeServer(replies, retokenize)
    cfg = RolloutConfig(temperature=0.0, max_new_tokens=config.pop("max_new_tokens", 100), **config)
    return ServedRollout("http://x/v1", "m", cfg, model_budget=BUDGET, client=server), server


CALL = ('<think> look\n\n{"bbox_2d": [30, 20, 150, 130', "stop", "]}", 12)
ANSWER = (" red </think>\n<answer>red", "stop", "</answer>", 6)


def test_a_call_then_an_answer():
    eng, server = engine([CALL, ANSWER])
    [t] = eng.generate([("What color?", make_image())])
    assert t.finish_reason == "answer" and t.answer == "red" and len(t.crops) == 1
    assert t.text == CALL[0] + "]}\n" + IMAGE_TEXT + ANSWER[0] + "</answer>"
    first, second = server.requests
    assert [m["role"] for m in first["messages"]] == ["user"] and "continue_final_message" not in first["extra_body"]
    assert second["extra_body"]["continue_final_message"] is True
    assert second["extra_body"]["add_generation_prompt"] is False
    parts = second["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text"] and parts[-1]["text"] == ""
    assert parts[0]["text"] == CALL[0] + "]}\n"
    assert second["max_tokens"] == 100 - 12 and first["stop"] == ["]}", "]\n}", "] }", "</answer>"]
    # the box is read in model space (320x240 -> 308x252 under BUDGET) and mapped back
    assert t.boxes[0].x1 == pytest.approx(30 * 320 / 308) and t.boxes[0].y2 == pytest.approx(130 * 240 / 252)
    assert t.token_exact and t.prompt_length == 100 and sum(t.action_mask) == 18 == t.num_sampled


def test_image_newline_puts_a_newline_after_the_crop():
    eng, server = engine([CALL, ANSWER], image_newline=True)
    [t] = eng.generate([("q", make_image())])
    assert server.requests[1]["messages"][-1]["content"][-1] == {"type": "text", "text": "\n"}
    assert IMAGE_TEXT + "\n" + ANSWER[0] in t.text


@pytest.mark.parametrize("policy,finish,requests", [("skip", "answer", 2), ("end", "bad_box", 1)])
def test_bad_calls(policy, finish, requests):
    bad = ('{"bbox_2d": [150, 20, 30, 130', "stop", "]}", 5)
    eng, server = engine([bad, ANSWER], bad_box=policy)
    [t] = eng.generate([("q", make_image())])
    assert t.finish_reason == finish and len(server.requests) == requests and not t.crops
    assert len(t.bad_calls) == 1 and "empty" in t.bad_calls[0]


def test_eos_budget_and_crop_limits():
    eng, _ = engine([("I do not know", "stop", None, 4)])
    assert eng.generate([("q", make_image())])[0].finish_reason == "eos"
    eng, server = engine([("blah", "length", None, 10)], max_new_tokens=10)
    assert eng.generate([("q", make_image())])[0].finish_reason == "max_new_tokens"
    eng, _ = engine([CALL, CALL], max_crops=1)
    [t] = eng.generate([("q", make_image())])
    assert t.finish_reason == "max_crops" and len(t.crops) == 1


def test_retokenized_prompts_are_flagged_not_trusted():
    eng, _ = engine([CALL, ANSWER], retokenize=True)
    [t] = eng.generate([("q", make_image())])
    assert not t.token_exact
    assert sum(t.action_mask) < t.num_sampled  # the re-tokenized part is no longer marked as sampled


def test_several_prompts_and_samples_come_back_prompt_major():
    eng, _ = engine([("a", "stop", None, 1)] * 4)
    out = eng.generate([("q0", make_image()), ("q1", make_image(seed=1))], num_samples=2)
    assert [t.prompt_index for t in out] == [0, 0, 1, 1]


def test_scripted_rounds_and_literal_regex():
    text = '<think> a.b*c (d) [e]\n{"bbox_2d": [1, 2, 3, 4]} </think>\t$^|?+\\'
    assert re.fullmatch(literal_regex(text), text)
    extra = scripted_rounds(["x.", "y"])
    assert extra(0, 0) == {"structured_outputs": {"regex": "x\\."}} and extra(0, 2) == {}


def test_checkpoint_budget_and_metrics(tmp_path):
    (tmp_path / "processor_config.json").write_text(json.dumps({"image_processor": {
        "size": {"shortest_edge": 3136, "longest_edge": 200704}, "patch_size": 14, "merge_size": 2}}))
    assert checkpoint_budget(str(tmp_path)) == BUDGET
    assert checkpoint_budget(str(tmp_path / "none")) is None
    text = '# HELP x\nvllm:prompt_tokens_total{model="a"} 10.0\nvllm:prompt_tokens_total{model="b"} 5\n'
    assert parse_metrics(text) == {"vllm:prompt_tokens_total": 15.0}


def test_cli_engine_openai_needs_a_base_url(tmp_path, capsys):
    from vlir.cli import main

    image = tmp_path / "p.png"
    make_image().save(image)
    assert main(["infer", "--engine", "openai", "--model", "m", "--image", str(image), "--question", "q",
                 "--out", str(tmp_path / "o")]) == 2
    assert "--engine openai needs --base-url" in capsys.readouterr().err
    assert main(["infer", "--engine", "vllm", "--model", "m", "--image", str(image), "--question", "q"]) == 2
    assert "--engine must be local or openai" in capsys.readouterr().err


def test_served_engine_picks_the_image_budget(tmp_path):
    from vlir.rollout import build_engine, rollout_config
    from vlir.rollout.config import VLMR3_MODEL_PIXELS

    def served_engine(model, base_url, agent="vlir", max_pixels=None, settings=None):  # the one factory
        config = rollout_config(agent, engine="served", base_url=[base_url], max_pixels=max_pixels,
                                **(settings or {}))
        return build_engine(model, config)

    assert served_engine("name", "http://x/v1", agent="vlmr3").model_budget == VLMR3_MODEL_PIXELS
    (tmp_path / "processor_config.json").write_text(json.dumps({"image_processor": {
        "size": {"shortest_edge": 3136, "longest_edge": 200704}, "patch_size": 14, "merge_size": 2}}))
    eng = served_engine(str(tmp_path), "http://x/v1", settings={"max_crops": 2, "mode": "kv", "top_p": None})
    assert eng.model_budget == BUDGET and eng.config.max_crops == 2
    assert served_engine(str(tmp_path), "http://x/v1", max_pixels=100352).model_budget.max_pixels == 100352
    with pytest.raises(ValueError, match="unknown agent preset"):
        served_engine("name", "http://x/v1", agent="nope")
