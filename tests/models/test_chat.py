"""The chat rendering: the released VLM-R3 format, model-space boxes, labels, and the token
contract the rollout engine relies on."""

from __future__ import annotations

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vlir import geometry
from vlir.models.registry import default_family
from vlir.crops import decode_png
from vlir.geometry import PixelBudget
from vlir.records import Box, Crop, Record
from vlir.models import chat
from vlir.models import special_ids

LOOK_RE = re.compile(r'\{"bbox_2d": \[(-?\d+), (-?\d+), (-?\d+), (-?\d+)\]\}')


@pytest.fixture(scope="module")
def encoded(tiny, records):
    _, processor = tiny
    cfg = chat.ChatConfig.for_processor(processor)
    return {n: chat.encode_record(rec, img, processor, cfg) for n, (rec, img) in records.items()}


def _vision_blocks(ids: list[int], sid: dict[str, int]) -> list[int]:
    """Numbers of <|image_pad|> between each <|vision_start|> / <|vision_end|> pair, in order."""
    blocks, inside, count = [], False, 0
    for t in ids:
        if t == sid["vision_start"]:
            assert not inside
            inside, count = True, 0
        elif t == sid["vision_end"]:
            assert inside
            blocks.append(count)
            inside = False
        elif inside:
            assert t == sid["image_pad"]
            count += 1
    assert not inside
    return blocks


@pytest.mark.parametrize("n_looks", [0, 1, 4])
def test_pad_tokens_match_image_grids(tiny, records, encoded, n_looks):
    _, processor = tiny
    enc, sid = encoded[n_looks], special_ids(processor)
    grids = enc["image_grid_thw"]
    assert grids.shape == (1 + n_looks, 3)
    assert _vision_blocks(enc["input_ids"].tolist(), sid) == [int(g.prod()) // 4 for g in grids]
    assert enc["pixel_values"].shape[0] == int(grids.prod(dim=1).sum())
    assert torch.equal(enc["mm_token_type_ids"], (enc["input_ids"] == sid["image_pad"]).long())
    for g in grids:
        assert len(chat.image_block_ids(g, processor)) == int(g.prod()) // 4 + 2


@pytest.mark.parametrize("n_looks", [0, 1, 4])
def test_labels_decode_to_exactly_the_assistant_text(tiny, records, encoded, n_looks):
    _, processor = tiny
    record, image = records[n_looks]
    enc, sid = encoded[n_looks], special_ids(processor)
    cfg = chat.ChatConfig.for_processor(processor)
    text = chat.assistant_text(chat.assistant_segments(record, cfg))
    labels, ids = enc["labels"], enc["input_ids"]
    learned = labels[labels != chat.IGNORE_INDEX].tolist()
    assert learned[-1] == sid["im_end"] == ids[-1]
    assert processor.tokenizer.decode(learned[:-1], skip_special_tokens=False,
                                      clean_up_tokenization_spaces=False) == text
    # Learned tokens are the input tokens themselves; vision tokens and the prompt never are.
    mask = labels != chat.IGNORE_INDEX
    assert torch.equal(labels[mask], ids[mask])
    vision = torch.isin(ids, torch.tensor([sid["vision_start"], sid["vision_end"], sid["image_pad"]]))
    assert not (mask & vision).any()
    prompt = chat.encode_prompt(record.sample.question, image, processor, cfg)["input_ids"]
    assert torch.equal(ids[: len(prompt)], prompt)
    assert not mask[: len(prompt)].any() and mask[len(prompt)]
    assert processor.tokenizer.decode(prompt[-6:], skip_special_tokens=False).endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("n_looks", [0, 1, 4])
def test_format_is_the_released_models(tiny, records, n_looks):
    _, processor = tiny
    record, _ = records[n_looks]
    segments = chat.assistant_segments(record, chat.ChatConfig.for_processor(processor))
    assert len(segments) == 2 * n_looks + 1
    assert [isinstance(s, Crop) for s in segments] == [i % 2 == 1 for i in range(len(segments))]
    assert segments[1::2] == list(record.crops)
    for seg in segments[0:-1:2]:
        assert seg.endswith("]}\n") and len(LOOK_RE.findall(seg)) == 1
    text = chat.assistant_text(segments)
    assert text.startswith("<think> ")
    assert text.endswith(f"</think>\n<answer>{record.chain.answer}</answer>")
    assert text.count("<think>") == text.count("</think>") == 1


@pytest.mark.parametrize("n_looks", [1, 4])
def test_bbox_numbers_map_back_to_the_stored_box(tiny, records, n_looks):
    _, processor = tiny
    record, _ = records[n_looks]
    cfg = chat.ChatConfig.for_processor(processor)
    s = record.sample
    found = LOOK_RE.findall(chat.assistant_text(chat.assistant_segments(record, cfg)))
    assert len(found) == n_looks
    mw, mh = geometry.model_size(s.width, s.height, cfg.model_budget)
    assert (mw, mh) != (s.width, s.height)  # the test image is resized: a real mapping is checked
    for coords, look in zip(found, record.chain.looks):
        back = geometry.from_model([int(v) for v in coords], s.width, s.height, cfg.model_budget)
        per_px = (s.width / mw, s.height / mh)
        for got, want, k in zip(back.as_list(), look.box.as_list(), (0, 1, 0, 1)):
            assert abs(got - want) <= per_px[k]


@settings(max_examples=300, deadline=None)
@given(w=st.integers(8, 3000), h=st.integers(8, 3000), data=st.data())
def test_bbox_2d_is_valid_and_within_one_model_pixel(w, h, data):
    if max(w, h) / min(w, h) > 100:
        return
    budget = PixelBudget(4 * 28 * 28, 256 * 28 * 28)
    x1 = data.draw(st.floats(0, w - 0.5))
    y1 = data.draw(st.floats(0, h - 0.5))
    x2 = data.draw(st.floats(x1 + 0.25, w))
    y2 = data.draw(st.floats(y1 + 0.25, h))
    box = Box(x1, y1, x2, y2)
    coords = chat.bbox_2d(box, w, h, budget)
    mw, mh = geometry.model_size(w, h, budget)
    assert 0 <= coords[0] < coords[2] <= mw and 0 <= coords[1] < coords[3] <= mh
    exact = [box.x1 * mw / w, box.y1 * mh / h, box.x2 * mw / w, box.y2 * mh / h]
    assert all(abs(c - e) <= 1 for c, e in zip(coords, exact))
    geometry.from_model(coords, w, h, budget)  # parses back to a proper box


def test_bbox_outside_the_image_is_refused():
    with pytest.raises(ValueError, match="outside"):
        chat.bbox_2d(Box(500, 500, 600, 600), 100, 100, PixelBudget(3136, 200704))


def test_matches_the_processors_own_tokenization(tiny, records, encoded):
    """The segment-by-segment ids equal what Qwen's processor gives for the whole rendered text,
    as the released SFT code builds it."""
    _, processor = tiny
    record, image = records[4]
    cfg = chat.ChatConfig.for_processor(processor)
    segments = chat.assistant_segments(record, cfg)
    text = chat.prompt_text(record.sample.question, processor, cfg) + "".join(
        s if isinstance(s, str) else default_family().image_block for s in segments) + "<|im_end|>"
    images = [image] + [decode_png(c.png) for c in record.crops]
    ref = processor(text=[text], images=images, return_tensors="pt")
    enc = encoded[4]
    assert torch.equal(ref["input_ids"][0], enc["input_ids"])
    assert torch.equal(ref["mm_token_type_ids"][0], enc["mm_token_type_ids"])
    assert torch.equal(ref["image_grid_thw"], enc["image_grid_thw"])
    assert torch.allclose(ref["pixel_values"], enc["pixel_values"])


def test_user_turn_is_question_plus_instruction(tiny, records):
    _, processor = tiny
    record, _ = records[1]
    text = chat.prompt_text(record.sample.question, processor, chat.ChatConfig.for_processor(processor))
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                           + default_family().image_block + record.sample.question + "\nYou need to first think")
    assert text.endswith("<answer> </answer> tags respectively.<|im_end|>\n<|im_start|>assistant\n")
    custom = chat.ChatConfig.for_processor(processor, instruction=" Answer briefly.", system="Be terse.")
    text = chat.prompt_text("Q?", processor, custom)
    assert "<|im_start|>system\nBe terse.<|im_end|>" in text and "Q? Answer briefly.<|im_end|>" in text


def test_num_tokens_is_exact(tiny, records, encoded):
    _, processor = tiny
    for n, (record, _) in records.items():
        assert chat.num_tokens(record, processor) == encoded[n]["input_ids"].shape[0]


def test_missing_crops_are_rendered_by_the_crop_rule(tiny, records, encoded):
    _, processor = tiny
    record, image = records[4]
    bare = Record(record.sample, record.chain, record.provenance)
    with pytest.raises(ValueError, match="original image"):
        chat.assistant_segments(bare, chat.ChatConfig())
    enc = chat.encode_record(bare, image, processor)
    assert torch.equal(enc["input_ids"], encoded[4]["input_ids"])
    assert torch.equal(enc["pixel_values"], encoded[4]["pixel_values"])
    partial = Record(record.sample, record.chain, record.provenance, crops=record.crops[:2])
    with pytest.raises(ValueError, match="2 crops for 4 looks"):
        chat.encode_record(partial, image, processor)


def test_inconsistent_inputs_are_refused(tiny, records):
    _, processor = tiny
    record, image = records[1]
    from vlir.models import model_budget

    own = model_budget(processor)
    other = PixelBudget(own.min_pixels, own.max_pixels * 2)  # not the processor's budget
    with pytest.raises(ValueError, match="for_processor"):
        chat.encode_record(record, image, processor, chat.ChatConfig(model_budget=other))
    with pytest.raises(ValueError, match="says 320x240"):
        chat.encode_record(record, image.resize((100, 100)), processor)


def test_forward_loss_is_finite_and_trains(tiny_model_dir, records, encoded):
    from vlir.models import load_model

    model, processor = load_model(tiny_model_dir)
    model.train()
    batch = chat.collate([encoded[0], encoded[4]], special_ids(processor)["pad"])
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    grad = model.lm_head.weight.grad if model.lm_head.weight.grad is not None else model.get_input_embeddings().weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_collate_right_pads_without_changing_logits(tiny, encoded):
    model, processor = tiny
    pad = special_ids(processor)["pad"]
    items = [encoded[0], encoded[4], encoded[1]]
    batch = chat.collate(items, pad)
    n = [int(e["input_ids"].shape[0]) for e in items]
    assert batch["input_ids"].shape == (3, max(n))
    assert (batch["labels"][0, n[0]:] == chat.IGNORE_INDEX).all() and (batch["input_ids"][0, n[0]:] == pad).all()
    assert batch["attention_mask"].sum(1).tolist() == n
    assert batch["image_grid_thw"].shape[0] == 1 + 5 + 2
    with torch.no_grad():
        together = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        for i, e in enumerate(items):
            alone = model(**{k: (v if k in ("pixel_values", "image_grid_thw") else v[None])
                             for k, v in e.items() if k != "labels"}).logits
            assert torch.allclose(together[i, : n[i]], alone[0], atol=1e-4)
    with pytest.raises(ValueError):
        chat.collate([], pad)


def test_instruction_is_the_released_agents():
    # The exact prompt of justgogorunrun/VLM-R3 (r3_vllm.py / data_qwen.py), appended to the question.
    assert chat.VLM_R3_INSTRUCTION.startswith("\nYou need to first think about the reasoning process")
    assert 'call the "crop" tool (format: {"bbox_2d": [x1, y1, x2, y2]})' in chat.VLM_R3_INSTRUCTION
    assert chat.VLM_R3_INSTRUCTION.endswith("<think> </think> and <answer> </answer> tags respectively.")
    assert json.loads(chat.format_look([1, 2, 3, 4])) == {"bbox_2d": [1, 2, 3, 4]}
    assert chat.format_look([1, 2, 3, 4]) == '{"bbox_2d": [1, 2, 3, 4]}'
