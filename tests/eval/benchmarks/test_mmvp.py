"""MMVP: reader on vlir's sample tree, layout errors, the rule-based and GPT-grader paths, VLM-R3's
verifier, and pair vs per-question accuracy."""

from __future__ import annotations

import csv

import pytest

from tests.eval.benchmarks.judge_support import scripted_judge
from vlir.eval.benchmarks.base import BenchmarkLayoutError, BenchmarkOptionError, get
from vlir.eval.benchmarks.mmvp import cambrian_extract, parse_options, vlmr3_verify


BENCH = "mmvp"


def score(bench, item, response, answer=None):
    return bench.judge(item, bench.extract(item, response, answer))


def test_reader_yields_pairs_with_opposite_answers(items):
    assert [it.id for it in items] == [f"mmvp/{i}" for i in range(1, 9)]
    assert [it.meta["pair"] for it in items] == [0, 0, 1, 1, 2, 2, 3, 3]
    for first, second in zip(items[::2], items[1::2]):
        assert {first.answer, second.answer} == {"a", "b"}
    it = items[0]
    assert it.options == ("Left", "Right")
    assert it.meta["official_prompt"] == "Is the red square on the left or the right? (a) Left (b) Right"
    assert it.question.startswith(it.meta["official_prompt"]) and it.question.endswith("directly.")
    assert it.image.open().size == (224, 224)


def test_wrong_folder_names_the_file(tmp_path):
    with pytest.raises(BenchmarkLayoutError, match="Questions.csv"):
        list(get("mmvp").items(tmp_path))


def test_missing_image_names_the_image(tmp_path):
    get("mmvp").write_sample(tmp_path, n=2)
    (tmp_path / "MMVP Images" / "2.jpg").unlink()
    with pytest.raises(BenchmarkLayoutError, match=r"MMVP Images/2\.jpg"):
        list(get("mmvp").items(tmp_path))


def test_bad_header_and_lndex_spelling(tmp_path):
    get("mmvp").write_sample(tmp_path, n=2)
    rows = list(csv.reader(open(tmp_path / "Questions.csv")))
    rows[0][0] = "lndex"  # the HF copy's header typo is accepted
    csv.writer(open(tmp_path / "Questions.csv", "w", newline="")).writerows(rows)
    assert len(list(get("mmvp").items(tmp_path))) == 2
    rows[0][3] = "Answer"
    csv.writer(open(tmp_path / "Questions.csv", "w", newline="")).writerows(rows)
    with pytest.raises(BenchmarkLayoutError, match="Correct Answer"):
        list(get("mmvp").items(tmp_path))


def test_parse_options_and_cambrian_rule():
    assert parse_options("(a) Open (b) Closed") == ("Open", "Closed")
    assert parse_options("(a) Light from the upper right (b) Mostly dark") == \
        ("Light from the upper right", "Mostly dark")
    assert parse_options("(a) The dog(s) sit (b) None") == ("The dog(s) sit", "None")
    assert cambrian_extract("(a)") == "a"
    assert cambrian_extract("The answer is (B).") == "b"
    assert cambrian_extract("Answer: Open.") == "open"
    assert cambrian_extract("((a))") == "a"  # lstrip/rstrip remove every bracket
    assert cambrian_extract("The answer is: (a)") == ": (a"  # quirk: "answer is" splits before "answer is:"


@pytest.mark.parametrize("response,answer,expected", [
    ("a", None, 1.0), ("A", None, 1.0), ("(a)", None, 1.0), ("a.", None, 1.0),
    ("The answer is (a).", None, 1.0), ("answer: Left", None, 1.0), ("Left.", None, 1.0),
    ("<think>..</think><answer>a</answer>", "a", 1.0),     # the protocol's parsed answer wins
    ("b", None, 0.0), ("It is on the left", None, 0.0),   # free text is not the option text
    ("a) Left", None, 0.0),                                 # rule keeps "a) left": no match
])
def test_rule_based_grading(items, response, answer, expected):
    bench = get("mmvp")
    item = items[0]
    assert item.answer == "a"
    assert score(bench, item, response, answer) == expected


def test_gpt_grader_hook_uses_the_official_prompt(items, tmp_path):
    item = items[0]

    def judged(reply, **kw):
        judge, client = scripted_judge(tmp_path / reply.encode().hex(), reply)
        return get("mmvp").configure(judge=judge, **kw), client

    bench, client = judged("Yes")
    assert bench.extract(item, "full text", "It is on the left") == "it is on the left"  # the rule reading, shown
    assert bench.llm_judge(item, "<think>x</think><answer>It is on the left</answer>", "It is on the left") == 1.0
    assert client.prompts[-1] == ("Given the following question Is the red square on the left or the right? (a) Left "
                                  "(b) Right, the correct answer is (a). Does the following answer correctly answers "
                                  "the question, answer:<think>x</think><answer>It is on the left</answer>?")
    assert judged("yes")[0].llm_judge(item, "x", None) == 1.0
    assert judged("no")[0].llm_judge(item, "x", None) == 0.0
    assert judged("Yes.")[0].llm_judge(item, "x", None) == 0.0   # regex ^(yes|no)$ fails
    assert judged("yes\n")[0].llm_judge(item, "x", None) == 0.0  # official compares unstripped
    answer_only, client = judged("yes", judge_input="answer")
    assert answer_only.llm_judge(item, "<answer> Left </answer>", " Left ") == 1.0
    assert client.prompts[-1].endswith("answer:Left?")
    assert get("mmvp").llm is None and get("mmvp").judge(item, "a") == 1.0  # configure() returned copies


def test_vlmr3_variant(items, tmp_path):
    item = items[0]
    plain = get("mmvp").configure(variant="vlmr3")
    assert plain.extract(item, "<think>x</think>\nsome text\nb", None) == "b"   # last line, no tag
    assert plain.extract(item, "<answer>x</answer> <answer> A </answer>", None) == "A"
    assert plain.judge(item, "A") == 1.0 and plain.judge(item, "b") == 0.0
    assert plain.judge(item, "Left") == 0.0  # no judge: their fallback is exact equality with "a"
    judge, client = scripted_judge(tmp_path, "1.0")
    with_judge = get("mmvp").configure(variant="vlmr3", judge=judge)
    assert with_judge.judge(item, "b") == 0.0 and not client.sent      # two single letters: no LLM call
    assert with_judge.judge(item, "Left") == 1.0 and with_judge.llm_judge(item, "Left", None) is None
    calls = client.prompts
    assert "Student's answer: Left\nCorrect answer: a" in calls[0]
    assert "Answer with the option's letter" not in calls[0]       # stripped from the problem
    assert vlmr3_verify("Left", "a", "q", lambda p: "It is 1.0") == 0.0  # float() fails -> exact fallback
    assert vlmr3_verify("Left", "a", "q", lambda p: "maybe") == 0.0
    assert vlmr3_verify("a", "a", "q", lambda p: 1 / 0) == 1.0
    assert vlmr3_verify("left", "x/Left", "q", None) == 1.0         # '/'-separated truths
    with pytest.raises(BenchmarkOptionError, match="unknown variant"):
        get("mmvp").configure(variant="cambrian")


def test_pair_accuracy_vs_question_accuracy(items):
    bench = get("mmvp")
    result = bench.aggregate(items, [1, 1, 1, 0, 0, 1, 1, 1])
    assert result["overall"] == result["pair_accuracy"] == 0.5       # pairs 0 and 3 of 4
    assert result["pairs"] == 4 and result["pairs_correct"] == 2
    assert result["question_accuracy"] == 0.75
    assert "VLM-R3" in result["question_accuracy_label"]
    one_wrong = bench.aggregate(items[:2], [1.0, 0.0])
    assert one_wrong["overall"] == 0.0 and one_wrong["question_accuracy"] == 0.5
    partial = bench.aggregate(items[:3], [1.0, 1.0, 1.0])
    assert partial["pairs"] == 1 and partial["incomplete_pairs"] == 1 and partial["overall"] == 1.0


def test_runner_path_end_to_end(items):
    """extract -> judge -> aggregate alone, as the runner calls them."""
    bench = get("mmvp")
    assert [it.answer for it in items[:4]] == ["a", "b", "b", "a"]
    responses = {0: "a", 1: "(b)", 2: "Left", 3: "Answer: Left"}   # item 2 is wrong: pair 1 fails
    scores = [bench.judge(it, bench.extract(it, f"<answer>{responses.get(i, it.answer)}</answer>",
                                            responses.get(i, it.answer)))
              for i, it in enumerate(items)]
    assert scores == [1, 1, 0, 1, 1, 1, 1, 1]
    result = bench.aggregate(items, scores)
    assert result["pairs_correct"] == 3 and result["overall"] == 0.75 and result["question_accuracy"] == 7 / 8
