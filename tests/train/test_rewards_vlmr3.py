"""The released VLM-R³ reward set (``vlmr3/*``) on strings: the values rgrpo.py's functions give,
cases taken from the released model's logged V* responses, and the optional cached judge."""

from __future__ import annotations

import pytest

from vlir.testing.openai_server import FakeOpenAIServer, Reply, Status
from vlir.train.rewards import RewardSpec, compute_rewards, format_reward, get_reward
from vlir.train.rewards_vlmr3 import Judge, acc_verifier, accuracy, format_, length, repeat, textvqa_verifier

# Items 0 and 99 of the authors' V* log, verbatim (the second holds the key twice).
PLAIN = ("<think> The glove appears to be flexible and is being used for food handling, which suggests it is a "
         'material that can withstand heat and is easy to clean.\n\n{"bbox_2d": [556, 140, 722, 294]}\n'
         "<answer>A</answer>\n")
DOUBLE = ("<think> To determine if the telephone is on the left or right side of the hand lamp, let's focus on "
          'the area around the hand lamp and the telephone.\n\n{"bbox_2d": [1470, 385, 1538, 486], '
          '"bbox_2d": [1798, 321, 1922, 496]}\n<answer>right</answer>\n')
SPOKEN = ('<think> look at the stool\n\n{"bbox_2d": [1, 2, 30, 40]}\nThe stool appears to be blue.\n\n<answer>B</answer>\n')
VLIR_TEXT = PLAIN.replace("]}\n<answer>", "]}\n<|vision_start|><|image_pad|><|vision_end|><answer>").rstrip() + "<|im_end|>"


def test_registered_under_their_names():
    for name, fn in [("vlmr3/accuracy", accuracy), ("vlmr3/format", format_), ("vlmr3/repeat", repeat),
                     ("vlmr3/length", length)]:
        assert get_reward(name) is fn


def test_the_released_models_responses_get_format_05_where_vlirs_format_gives_0():
    texts = [PLAIN, DOUBLE, SPOKEN, VLIR_TEXT]
    assert format_(texts) == [0.5] * 4
    assert format_reward(texts) == [0.0] * 4  # vlir's stricter format wants </think>
    assert format_(["<answer>A</answer> and more", "<think>no answer</think>", "<answer>\nA\n</answer>\n\n"]) == \
        [0.0, 0.0, 0.5]


@pytest.mark.parametrize("text, gold, expect", [
    (PLAIN, ["A"], 1.0), (PLAIN, ["B"], 0.0), (VLIR_TEXT, ["A"], 1.0),
    ("<answer>a</answer>", ["A"], 0.0),  # two different single characters: 0 at once (case-sensitive)
    ("<answer>Blue</answer>", ["blue"], 0.0),  # rgrpo's copy compares case-sensitively; no judge -> equality
    ("<answer>blue</answer>", ["red", "blue"], 1.0),  # answers join as "red/blue", split again
    ("I think\nblue", ["blue"], 1.0),  # no tag: the last line
    (DOUBLE, ["A"], 0.0),  # "right" vs "A": the judge's case; off -> exact equality -> 0
])
def test_accuracy_is_acc_verifier(text, gold, expect):
    assert accuracy([text], answers=[gold], source=["vstar"], question=["q"]) == [expect]


def test_textvqa_uses_evalai_normalisation_and_the_yes_no_rule():
    assert textvqa_verifier("<answer>The Two Dogs.</answer>", "<answer> 2 dogs </answer>", "q") == 1.0
    assert textvqa_verifier("<answer>yes, it is</answer>", "yes", "q") == 1.0
    assert textvqa_verifier("<answer>yes or no</answer>", "yes", "q") == 0.0
    assert accuracy(["<answer>Coca-Cola</answer>"], answers=[["coca cola"]], source=["textvqa"]) == [1.0]


def test_a_solution_column_is_used_as_the_authors_store_it():
    assert accuracy(["<answer>B</answer>"], solution=["<answer> B </answer>"], source=["vstar"]) == [1.0]
    assert acc_verifier("<answer>B</answer>", "B/C", "q") == 1.0
    with pytest.raises(ValueError, match="MMK12"):
        accuracy(["<answer>1</answer>"], answers=[["1"]], source=["MMK12"])


def test_repeat_pays_half_for_parsed_calls_only_with_a_correct_answer():
    texts = [PLAIN, DOUBLE, "<answer>A</answer>", '{"bbox_2d": [1, 2, 3, 4]} {"bbox": [1, 2}\n<answer>A</answer>',
             '{"bbox_2d": [1, 2]} <answer>A</answer>', '{"bbox": [1, 2, 3, 4]} <answer>A</answer>']
    assert repeat(texts, rewards={"vlmr3/accuracy": [1.0] * 6}) == [0.5, 0.5, 0.0, 0.0, 0.5, 0.0]
    assert repeat(texts[:2], rewards={"vlmr3/accuracy": [0.0, 1.0]}) == [0.0, 0.5]
    # without accuracy before it, accuracy is computed
    assert repeat([PLAIN, PLAIN], answers=[["A"], ["B"]], source=["vstar"] * 2, question=["q"] * 2) == [0.5, 0.0]


def test_length_is_the_shortest_segment_capped_at_010():
    assert length([PLAIN, SPOKEN]) == [0.0, 0.1]  # crop then answer: the last segment is empty
    assert length(['<think> ab {"bbox_2d": [1, 2, 3, 4]} it is A <answer>A</answer>']) == [0.02]
    # their pattern does not match a call holding the key twice: no split, one long segment
    assert length([DOUBLE]) == [0.1]


def test_the_recipe_set_sums_to_the_authors_total():
    specs = [RewardSpec(n) for n in ("vlmr3/accuracy", "vlmr3/format", "vlmr3/repeat", "vlmr3/length")]
    raw, total = compute_rewards(specs, [PLAIN, SPOKEN, PLAIN], answers=[["A"], ["B"], ["C"]],
                                 source=["vstar"] * 3, question=["q"] * 3)
    assert raw["vlmr3/repeat"] == [0.5, 0.5, 0.0] and total == [2.0, 2.1, 0.5]


def test_judge_is_asked_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMR3_TEST_KEY", "k")
    with FakeOpenAIServer() as server:
        server.script("Student's answer: right", Reply("1.0"))
        server.script("Student's answer: left", Reply("0.0"))
        server.script("Student's answer: odd", Reply("maybe"))
        server.script("Student's answer: down", Status(400))
        judge = {"base_url": server.base_url, "model": "m", "api_key_env": "VLMR3_TEST_KEY",
                 "cache": str(tmp_path / "judge.sqlite")}
        texts = [DOUBLE, DOUBLE.replace("right", "left"), "<answer>odd</answer>", "<answer>down</answer>"]
        kw = dict(answers=[["A"]] * 4, source=["vstar"] * 4, question=["Which side?"] * 4)
        assert accuracy(texts, judge=judge, **kw) == [1.0, 0.0, 0.0, 0.0]
        assert accuracy(texts[:3], judge=judge, **kw | {k: v[:3] for k, v in kw.items()}) == [1.0, 0.0, 0.0]
        assert server.count() == 4  # the second run read every verdict from the cache
    # an API error is not cached: the same question is asked again next time
    with FakeOpenAIServer() as server:
        server.script("Student's answer: down", Reply("1.0"))
        judge["base_url"] = server.base_url
        assert accuracy(texts[3:], judge=Judge(**judge), **{k: v[3:] for k, v in kw.items()}) == [1.0]
