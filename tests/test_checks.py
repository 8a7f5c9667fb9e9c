"""Each check passes a good chain and fails the specific defect it exists for."""

from __future__ import annotations

import pytest

from vlir import checks
from vlir.checks import CheckConfig, failed_names, run_checks
from vlir.records import Box, Chain, Look, Region, Sample, Think

W, H = 400, 300


def sample(source: str = "textvqa", answers=("coffee",) * 10, evidence=None) -> Sample:
    if evidence is None:
        evidence = (Region(Box(100, 100, 160, 120), "coffee", "ocr_word"),)
    return Sample(id=f"{source}/val/1", source=source, split="val", image="images/a.jpg", width=W,
                  height=H, question="what is written?", answers=tuple(answers), evidence=evidence)


def chain(*boxes, answer: str = "coffee") -> Chain:
    steps = [Think("The text is in the center; let me zoom in.")]
    for b in boxes:
        steps += [Look(Box(*b), "text"), Think('It reads "coffee".')]
    return Chain(tuple(steps), answer)


GOOD = (90, 90, 170, 130)


def by_name(results):
    return {r.name: r for r in results}


def test_good_chain_passes_every_check():
    results = run_checks(sample(), chain(GOOD))
    assert [r.name for r in results] == [fn.__name__ for fn in checks.CHECKS]
    assert failed_names(results) == ()
    got = by_name(results)
    assert got["grounding"].value == pytest.approx(1.0)  # the word lies inside the look
    assert got["box_min_side"].value == pytest.approx(40)
    assert got["max_looks"].value == 1


@pytest.mark.parametrize("bad, problem", [
    (Chain((), "coffee"), "no steps"),
    (Chain((Think("  "), Look(Box(*GOOD))), "coffee"), "empty thought"),
    (Chain((Think("ok"), Look(Box(*GOOD))), " "), "empty answer"),
    (Chain((Think("just thinking"),), "coffee"), "no look step"),
])
def test_schema_failures(bad, problem):
    result = checks.schema(sample(), bad, CheckConfig())
    assert not result.passed and problem in result.detail


def test_schema_without_required_look():
    result = checks.schema(sample(), Chain((Think("just thinking"),), "x"), CheckConfig(require_look=False))
    assert result.passed


@pytest.mark.parametrize("text", [
    "see <answer>x</answer>", "then ]} closes", "a fake call {\"bbox_2d\": [1, 2, 3, 4]", "<|im_end|>",
    "<|vision_start|>", "<tool_call>", "<think> again", "<|some_future_token|>",
])
def test_protocol_strings_in_a_thought_fail_text_safe(text):
    result = checks.text_safe(sample(), Chain((Think(text), Look(Box(*GOOD))), "coffee"), CheckConfig())
    assert not result.passed and "reserves" in result.detail and "step 0" in result.detail


def test_the_reserved_strings_come_from_the_protocol_and_the_families():
    from vlir import protocol
    from vlir.models.registry import families

    reserved = set(checks.reserved_strings())
    assert set(protocol.STOP_STRINGS) <= reserved and protocol.ANSWER_OPEN in reserved
    for family in families():
        assert set(family.special_tokens.values()) <= reserved
        assert {family.special_tokens[n] for n in family.vision_tokens} <= reserved


@pytest.mark.parametrize("text, code", [
    ("nul\x00byte", "U+0000"), ("ansi \x1b[31mred", "U+001B"), ("rtl \u202eevil", "U+202E"),
    ("crlf\r\nline", "U+000D"), ("isolate \u2066x\u2069", "U+2066"),
])
def test_control_characters_fail_text_safe_anywhere(text, code):
    for bad in (Chain((Think(text), Look(Box(*GOOD))), "coffee"), Chain((Think("ok"), Look(Box(*GOOD), text)), "coffee")):
        result = checks.text_safe(sample(), bad, CheckConfig())
        assert not result.passed and code in result.detail
    import dataclasses

    result = checks.text_safe(dataclasses.replace(sample(), question=text), chain(GOOD), CheckConfig())
    assert not result.passed and "question" in result.detail


def test_newlines_tabs_and_ordinary_brackets_are_fine():
    good = Chain((Think("Line one.\n\tLine two [a] {b}."), Look(Box(*GOOD))), "coffee")
    assert checks.text_safe(sample(), good, CheckConfig()).passed


def test_text_length_limits_are_configurable():
    import dataclasses

    huge = Chain((Think("x" * 3_200_000), Look(Box(*GOOD))), "coffee")
    result = checks.text_length(sample(), huge, CheckConfig())
    assert not result.passed and "step 0: 3200000 characters > 4000 (thought)" in result.detail
    long_q = dataclasses.replace(sample(), question="q" * 1_000_000)
    assert "question" in checks.text_length(long_q, chain(GOOD), CheckConfig()).detail
    assert checks.text_length(long_q, chain(GOOD), CheckConfig(max_question_chars=2_000_000)).passed
    assert failed_names(run_checks(sample(), huge)) == ("text_length",)


def test_missing_chain_gives_only_schema_failure():
    assert failed_names(run_checks(sample(), None)) == ("schema",)


def test_box_in_image_tolerance():
    cfg = CheckConfig(clip_tolerance=2.0)
    assert checks.box_in_image(sample(), chain((-1.5, 10, 100, 100)), cfg).passed
    result = checks.box_in_image(sample(), chain((10, 10, W + 5, 100)), cfg)
    assert not result.passed and result.value == pytest.approx(5)
    outside = checks.box_in_image(sample(), chain((W + 10, 10, W + 50, 100)), cfg)
    assert not outside.passed and "outside" in outside.detail


def test_box_min_side():
    result = checks.box_min_side(sample(), chain(GOOD, (100, 100, 120, 200)), CheckConfig())
    assert not result.passed and result.value == pytest.approx(20) and "look 1" in result.detail
    tiny_image = Sample(id="x/val/1", source="textvqa", split="val", image="a.jpg", width=20, height=300,
                        question="q", answers=("a",))
    assert checks.box_min_side(tiny_image, chain((0, 0, 20, 40)), CheckConfig()).passed  # capped at the image


def test_box_not_whole_image():
    result = checks.box_not_whole_image(sample(), chain((0, 0, W, H * 0.95)), CheckConfig())
    assert not result.passed and result.value == pytest.approx(0.95)
    assert checks.box_not_whole_image(sample(), chain((0, 0, W, H * 0.95)), CheckConfig(max_area_ratio=0.96)).passed


def test_grounding():
    far = (300, 200, 360, 260)
    result = checks.grounding(sample(), chain(GOOD, far), CheckConfig())
    assert not result.passed and result.value == 0.0 and "look 1" in result.detail
    # a look inside a large object region counts as grounded (containment of the look)
    big = sample(source="gqa", answers=("car",), evidence=(Region(Box(0, 0, 300, 250), "car", "object"),))
    assert checks.grounding(big, chain((50, 50, 100, 100), answer="car"), CheckConfig()).passed
    # a partial overlap below the threshold fails
    half = checks.grounding(sample(), chain((130, 100, 190, 120)), CheckConfig(grounding_min=0.6))
    assert not half.passed and half.value == pytest.approx(0.5)


def test_grounding_skipped_without_evidence():
    result = checks.grounding(sample(evidence=()), chain((300, 200, 360, 260)), CheckConfig())
    assert result.passed and result.value is None and "skipped" in result.detail


def test_answer_correct_uses_the_source_metric():
    cfg = CheckConfig()
    one_vote = ["coffee"] + ["tea"] * 9
    assert checks.answer_correct(sample(answers=one_vote), chain(GOOD), cfg).passed  # VQA acc 0.3
    strict = checks.answer_correct(sample(answers=one_vote), chain(GOOD), CheckConfig(vqa_min=0.5))
    assert not strict.passed and strict.value == pytest.approx(0.3)
    doc = sample(source="docvqa", answers=("coffee",))
    assert checks.answer_correct(doc, chain(GOOD, answer="Coffe"), cfg).passed  # ANLS 0.83
    assert not checks.answer_correct(doc, chain(GOOD, answer="tea"), cfg).passed
    assert not checks.answer_correct(sample(source="gqa", answers=("yes",)), chain(GOOD, answer="no"), cfg).passed
    assert checks.answer_correct(sample(source="vsr", answers=("true",)), chain(GOOD, answer="True"), cfg).passed
    assert not checks.answer_correct(sample(answers=()), chain(GOOD), cfg).passed
    unknown = checks.answer_correct(sample(source="nosuch"), chain(GOOD), cfg)
    assert not unknown.passed and "no metric" in unknown.detail


def test_no_redundant_look():
    result = checks.no_redundant_look(sample(), chain(GOOD, (91, 90, 170, 130)), CheckConfig())
    assert not result.passed and result.value > 0.9 and "look 1 repeats look 0" in result.detail
    assert checks.no_redundant_look(sample(), chain(GOOD, (200, 150, 260, 200)), CheckConfig()).passed


def test_max_looks():
    boxes = [(10 + 60 * i, 10, 60 + 60 * i, 60) for i in range(5)]
    result = checks.max_looks(sample(), chain(*boxes), CheckConfig())
    assert not result.passed and result.value == 5
    assert checks.max_looks(sample(), chain(*boxes), CheckConfig(max_looks=5)).passed


def test_reasons_are_failed_check_names_in_order():
    bad = chain((0, 0, W, H), (1, 1, W, H), answer="tea")
    assert failed_names(run_checks(sample(), bad)) == (
        "box_not_whole_image", "answer_correct", "no_redundant_look")


def test_config_validation_and_from_dict():
    assert CheckConfig.from_dict({"max_looks": 6}).max_looks == 6
    assert CheckConfig.from_dict(None) == CheckConfig()
    with pytest.raises(ValueError, match="unknown check config key checks.min_sid"):
        CheckConfig.from_dict({"min_sid": 3})
    with pytest.raises(ValueError, match="max_area_ratio"):
        CheckConfig(max_area_ratio=1.5)
    with pytest.raises(ValueError, match="max_looks"):
        CheckConfig(max_looks=0)
