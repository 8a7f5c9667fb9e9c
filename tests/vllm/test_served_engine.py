"""The served engine (``--engine openai``) against a real vLLM server, compared with vlir's own
engine on the same tiny weights: the random model is made to write the same script on both sides
(vlir: :class:`ScriptedLogits`; vLLM: a ``structured_outputs`` regex per round), and both loops
must parse, map, crop and answer identically."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_image, make_output

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(900)]  # the shared server starts in ~70-200 s

QUESTION = "What color is the square?"
SCRIPT = ['<think> The square is on the left.\n\n{"bbox_2d": [30, 20, 150, 130]}',
          ' It is red. </think>\n<answer>red</answer>']


@pytest.fixture(scope="module")
def local(tiny_vllm_dir):
    from vlir.models import load_model

    return load_model(tiny_vllm_dir)


def served(server, processor, config, script=SCRIPT):
    from vlir.rollout.served import ServedRollout, scripted_rounds
    from vlir.models import model_budget

    return ServedRollout(server.base_url, str(server.served_name), config, model_budget=model_budget(processor),
                         round_extra=scripted_rounds(script) if script else None)


@pytest.mark.parametrize("image_newline", [False, True])
def test_served_trajectory_matches_vlirs_engine(vllm_server, local, image_newline):
    from vlir.protocol import strip_special
    from vlir.rollout import Rollout, RolloutConfig
    from vlir.testing.scripted import ScriptedLogits

    model, processor = local
    config = RolloutConfig(temperature=0.0, max_new_tokens=120, image_newline=image_newline)
    script = SCRIPT
    mine = Rollout(model, processor, config.with_(
        logits_processor=ScriptedLogits(processor, script, image_newline=image_newline)))
    image = make_image()
    [a] = mine.generate([(QUESTION, image)])
    [b] = served(vllm_server, processor, config, script).generate([(QUESTION, image)])

    assert a.finish_reason == b.finish_reason == "answer"
    assert a.answer == b.answer == "red"
    assert a.text == b.text
    assert len(b.crops) == 1 and [c.png for c in a.crops] == [c.png for c in b.crops]
    assert a.boxes == b.boxes
    # the first request's prompt is token for token vlir's (template, instruction, image tokens)
    assert b.prompt_length == a.prompt_length
    assert b.token_ids[:b.prompt_length] == a.token_ids[:a.prompt_length]
    # the server's ids spell the same trajectory (its tokenization of the forced text may differ)
    tail = processor.tokenizer.decode(b.token_ids[b.prompt_length:], skip_special_tokens=False)
    assert strip_special(tail) == strip_special(a.text)
    assert b.requests == 2 and 0 < sum(b.action_mask) <= b.completion_tokens


def test_image_as_the_last_part_is_what_vllm_refuses(vllm_server, local):
    """The 500 of an image closing the continued assistant turn, and the empty text part that fixes it."""
    import openai

    from vlir.rollout.served import _image_part

    crop = make_image(112, 112, seed=3)
    user = {"role": "user", "content": [_image_part(make_image()), {"type": "text", "text": QUESTION}]}
    head = [{"type": "text", "text": '<think> {"bbox_2d": [1, 2, 30, 40]}\n'}, _image_part(crop)]
    extra = {"continue_final_message": True, "add_generation_prompt": False, "return_token_ids": True}

    def ask(parts):
        return vllm_server_client(vllm_server).chat.completions.create(
            model=str(vllm_server.served_name), messages=[user, {"role": "assistant", "content": parts}],
            max_tokens=1, temperature=0, extra_body=extra).model_dump()

    with pytest.raises(openai.InternalServerError, match="Failed to apply prompt replacement"):
        ask(head)
    tokenizer = local[1].tokenizer
    vision_end = tokenizer.convert_tokens_to_ids("<|vision_end|>")
    assert ask(head + [{"type": "text", "text": ""}])["prompt_token_ids"][-1] == vision_end
    newline = tokenizer.encode("\n", add_special_tokens=False)
    assert ask(head + [{"type": "text", "text": "\n"}])["prompt_token_ids"][-2:] == [vision_end, *newline]


def vllm_server_client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.base_url, api_key="EMPTY")


def test_eval_over_shards_through_the_server(vllm_server, local, tmp_path):
    """``vlir.eval.evaluate`` with the served engine, scripted: every question answered 'red', scored."""
    from vlir.eval import evaluate
    from vlir.rollout import RolloutConfig

    out = make_output(tmp_path / "corpus", n=3, embed=True)
    engine = served(vllm_server, local[1], RolloutConfig(temperature=0.0, max_new_tokens=120))
    scores = evaluate.evaluate(engine, evaluate.shard_items(out / "gqa" / "val"), tmp_path / "eval", batch_size=2)
    rows = [json.loads(line) for line in (tmp_path / "eval" / evaluate.PREDICTIONS).read_text().splitlines()]
    assert scores["n"] == 3 and [r["answer"] for r in rows] == ["red"] * 3
    assert all(r["crops"] == 1 and r["finish_reason"] == "answer" for r in rows)
    assert scores["sources"]["gqa"]["score"] == 1.0 and scores["agent"]["engine"] == "openai"


def test_cli_infer_and_eval_with_engine_openai(vllm_server, tiny_vllm_dir, tmp_path):
    """The CLI path, unscripted: the random model runs out of tokens, every question is accounted for."""
    from vlir.cli import main

    image = tmp_path / "photo.png"
    make_image().save(image)
    common = ["--engine", "openai", "--base-url", vllm_server.base_url, "--model", str(tiny_vllm_dir),
              "--max-new-tokens", "12"]
    assert main(["infer", "--image", str(image), "--question", QUESTION, "--out", str(tmp_path / "i"), *common]) == 0
    info = json.loads((tmp_path / "i" / "trajectory.json").read_text())
    assert info["agent"]["engine"] == "openai" and info["tokens"] == 12 and info["finish_reason"] == "max_new_tokens"
    assert info["agent"]["model_budget"] == [3136, 200704]  # read from the served folder's processor config
    out = make_output(tmp_path / "corpus", n=2, embed=True)
    assert main(["eval", "--data", str(out / "gqa" / "val"), "--out", str(tmp_path / "e"), *common]) == 0
    scores = json.loads((tmp_path / "e" / "scores.json").read_text())
    assert scores["n"] == 2 and scores["agent"]["engine"] == "openai"
