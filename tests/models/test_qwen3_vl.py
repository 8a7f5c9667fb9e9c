"""Qwen3-VL's family facts and the tiny offline Qwen3-VL: box grid, pixel grid, tokens, template."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from vlir import geometry  # noqa: E402
from vlir.models import qwen3_vl  # noqa: E402
from vlir.geometry import PixelBudget  # noqa: E402
from vlir.records import Box  # noqa: E402
from vlir.models import family_for, model_budget, special_ids  # noqa: E402

from tests.rollout_helpers import tiny, tiny_dir  # noqa: E402

QWEN3 = "qwen3_vl_tiny"


def test_relative_grid_round_trip_and_its_precision():
    """Through vlir.geometry with the family's budget: thousandths of the image, at any pixel budget."""
    width, height = 640, 427
    box = Box(100.3, 50.7, 333.3, 400.1)
    small, large = qwen3_vl.QWEN3_VL.budget(4096, 65536), qwen3_vl.QWEN3_VL.budget()
    assert large == qwen3_vl.RELEASED_IMAGE_BUDGET
    coords = geometry.to_model(box, width, height, small)
    assert coords == [157, 119, 521, 937] == geometry.to_model(box, width, height, large)
    assert geometry.box_space(width, height, small) == (1000, 1000)
    back = geometry.from_model(coords, width, height, small)
    for a, b, step in zip(back.as_list(), box.as_list(), (width, height, width, height)):
        assert abs(a - b) <= step / 2000 + 1e-9  # half a grid step: 0.32 px in x, 0.21 px in y here
    assert geometry.snap_to_model(box, width, height, small) == back
    assert geometry.to_model(back, width, height, small) == coords  # snapped boxes stay put
    assert geometry.from_model([0, 0, 1000, 1000], width, height, small) == Box(0, 0, width, height)
    with pytest.raises(ValueError, match="box_grid"):
        PixelBudget(4096, 65536, factor=32, box_grid=0)


def test_released_budget_is_the_32_pixel_grid():
    b = qwen3_vl.RELEASED_IMAGE_BUDGET
    assert (b.min_pixels, b.max_pixels, b.factor) == (64 * 32 * 32, 16384 * 32 * 32, 32)
    h, w = geometry.smart_resize(2000, 3000, b)
    assert h % 32 == 0 and w % 32 == 0


def test_tiny_processor_grid_and_image_block():
    model, processor = tiny(QWEN3)
    budget = model_budget(processor)
    assert budget.factor == 32 and getattr(processor, "video_processor", None) is None
    out = processor.image_processor(images=[Image.new("RGB", (320, 240))], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 16, 20]]  # 16-pixel patches: 240/16 x 320/16
    assert out["pixel_values"].shape == (320, 3 * 2 * 16 * 16)


def test_tiny_tokenizer_has_qwen3_tokens_and_template():
    _, processor = tiny(QWEN3)
    tok = processor.tokenizer
    ids = special_ids(processor)  # Qwen2.5's special tokens are all there
    assert ids["eos"] == tok.convert_tokens_to_ids("<|im_end|>")
    for token in qwen3_vl.QWEN3_ADDED_TOKENS:
        assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(token)) == token
    think = tok.encode("<think> a </think>", add_special_tokens=False)
    assert think[0] == tok.convert_tokens_to_ids("<think>")
    assert tok.decode(think, skip_special_tokens=True).startswith("<think>")  # not a special token
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]}],
        tokenize=False, add_generation_prompt=True)
    # Qwen3-VL's template has no default system prompt (Qwen2.5-VL's writes one)
    assert text == "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\n"
    assert processor.chat_template == qwen3_vl.chat_template()


def test_tiny_checkpoint_reloads_identically():
    model, processor = tiny(QWEN3)
    again = type(model).from_pretrained(tiny_dir(QWEN3))
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    assert model.config.image_token_id == special_ids(processor)["image_pad"]
    assert model.config.text_config.rope_parameters["mrope_interleaved"] is True


def test_the_family_is_chosen_from_config_json_and_from_the_processor():
    from vlir.models.registry import family_of, family_of_processor

    model, processor = tiny(QWEN3)
    assert family_of(tiny_dir(QWEN3)) is qwen3_vl.QWEN3_VL is family_for("qwen3_vl")
    assert family_of_processor(processor) is qwen3_vl.QWEN3_VL
    assert family_of_processor(processor.image_processor).name == "qwen2_5_vl"  # no class to tell: as before
    assert type(model).__name__ == qwen3_vl.QWEN3_VL.model_class
    crop = qwen3_vl.QWEN3_VL.crop_budget()
    assert (crop.factor, crop.box_grid) == (32, None)


def test_the_processor_pickles_for_dataloader_workers():
    import pickle

    _, processor = tiny(QWEN3)
    again = pickle.loads(pickle.dumps(processor))
    assert type(again).__name__ == "VlirQwen3VLProcessor" and again.chat_template == processor.chat_template
