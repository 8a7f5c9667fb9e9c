"""The tiny offline Qwen2.5-VL: built deterministically, loads like a checkpoint, processes images
with the project's resize rule, and runs forward/generate."""

from __future__ import annotations

import hashlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vlir import geometry
from vlir.geometry import PixelBudget
from vlir import models as tm
from vlir.models import loading, qwen2_5_vl


def _digests(path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_layout_and_config(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "processor_config.json", "chat_template.jinja"} <= names
    cfg = tm.load_tiny_config(tm.DEFAULT_TINY_CONFIG)
    model, processor = tm.load_model(tiny_model_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert model.config.text_config.hidden_size == cfg["text"]["hidden_size"]
    assert model.config.text_config.num_hidden_layers == cfg["text"]["num_hidden_layers"]
    assert model.config.vision_config.depth == cfg["vision"]["depth"]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert not model.training
    ids = tm.special_ids(processor)
    assert model.config.image_token_id == ids["image_pad"]
    assert model.config.vision_start_token_id == ids["vision_start"]
    assert model.config.vision_end_token_id == ids["vision_end"]
    assert model.config.text_config.vocab_size >= len(processor.tokenizer)
    assert ids["im_end"] in model.generation_config.eos_token_id


def test_packaged_yaml_shapes():
    """The packaged tiny YAML (moved from recipes/model/) keeps the shapes build_tiny_model needs."""
    data = tm.load_tiny_config()
    text_cfg, vision = data["text"], data["vision"]
    head_dim = text_cfg["hidden_size"] // text_cfg["num_attention_heads"]
    assert sum(text_cfg["mrope_section"]) * 2 == head_dim
    assert text_cfg["num_attention_heads"] % text_cfg["num_key_value_heads"] == 0
    assert vision["hidden_size"] % vision["num_heads"] == 0
    assert 0 < data["image_processor"]["min_pixels"] <= data["image_processor"]["max_pixels"]


def test_tiny_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "tiny.yaml"
    bad.write_text("text: {hidden_size: 64}\nvision: {depth: 1}\nimage_processor: {min_pixels: 1}\nbogus: 1\n")
    with pytest.raises(ValueError, match=r"tiny.yaml: unknown tiny model config key bogus"):
        tm.load_tiny_config(bad)
    with pytest.raises(ValueError, match="no tiny model YAML"):
        tm.load_tiny_config(tmp_path / "absent.yaml")


def test_family_from_checkpoint(tiny_model_dir):
    family = tm.family_of(tiny_model_dir)
    assert family.name == "qwen2_5_vl" and family.factor == 28
    assert family.coordinates == "absolute model pixels"
    with pytest.raises(ValueError, match="no vlir model family for model_type 'llama'"):
        tm.family_for("llama")


def test_build_is_deterministic_and_seeded(tiny_model_dir, tmp_path):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    again = tm.build_tiny_model(tmp_path / "again", seed=0)
    assert torch.rand(1) == before  # the caller's RNG stream is untouched
    assert _digests(again) == _digests(tiny_model_dir)
    other = tm.build_tiny_model(tmp_path / "other", seed=1)
    assert _digests(other)["model.safetensors"] != _digests(tiny_model_dir)["model.safetensors"]


def test_config_errors_are_explained(tmp_path):
    cfg = tm.load_tiny_config()
    cfg["text"] = dict(cfg["text"], mrope_section=[4, 4, 4])
    with pytest.raises(ValueError, match="mrope_section"):
        tm.build_tiny_model(tmp_path / "bad", config=cfg)


def test_tokenizer_specials_and_round_trip(tiny):
    _, processor = tiny
    tok = processor.tokenizer
    ids = tm.special_ids(processor)
    assert len(set(ids[k] for k in ("im_start", "im_end", "vision_start", "vision_end", "image_pad"))) == 5
    text = ('<think> The sign reads "EXIT 12".\n\n{"bbox_2d": [103, 7, 1290, 840]}\n'
            "Zoomed: it is red. é ü 中 </think>\n<answer>red</answer>")
    enc = tok.encode(text, add_special_tokens=False)
    assert tok.decode(enc, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text
    # Special tokens are atomic; digits are split one by one, as in Qwen's pre-tokenizer.
    assert tok.encode("<|im_start|><|image_pad|>", add_special_tokens=False) == [ids["im_start"], ids["image_pad"]]
    assert tok.tokenize("1290") == ["1", "2", "9", "0"]
    assert processor.chat_template == qwen2_5_vl.qwen2_5_vl_chat_template()


def test_processor_budget_and_resize_match_geometry(tiny):
    _, processor = tiny
    cfg = tm.load_tiny_config()
    budget = tm.model_budget(processor)
    assert budget == PixelBudget(cfg["image_processor"]["min_pixels"], cfg["image_processor"]["max_pixels"])
    out = processor.image_processor(images=[Image.new("RGB", (500, 333))], return_tensors="pt")
    t, gh, gw = out["image_grid_thw"][0].tolist()
    assert (gh * 14, gw * 14) == geometry.smart_resize(333, 500, budget)
    assert out["pixel_values"].shape[0] == t * gh * gw


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 5000), w=st.integers(1, 5000),
       lo=st.integers(1, 64), span=st.integers(0, 4096))
def test_smart_resize_equals_transformers(h, w, lo, span):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

    if max(h, w) / min(h, w) > 200:
        return
    budget = PixelBudget(lo * 28 * 28, (lo + span) * 28 * 28)
    assert geometry.smart_resize(h, w, budget) == hf_smart_resize(
        h, w, factor=28, min_pixels=budget.min_pixels, max_pixels=budget.max_pixels)


def test_forward_and_generate(tiny):
    model, processor = tiny
    ids = tm.special_ids(processor)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color?"}]}],
        add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (120, 90), (200, 40, 40))], return_tensors="pt")
    assert (inputs["input_ids"] == ids["image_pad"]).sum() == inputs["image_grid_thw"].prod() // 4
    with torch.no_grad():
        out = model(**inputs, labels=inputs["input_ids"])
        gen = model.generate(**inputs, max_new_tokens=5, do_sample=False,
                             suppress_tokens=tm.vision_token_ids(processor))
    assert torch.isfinite(out.loss)
    assert gen.shape[1] > inputs["input_ids"].shape[1]
    assert not set(gen[0, inputs["input_ids"].shape[1]:].tolist()) & set(tm.vision_token_ids(processor))


def test_load_processor_overrides_budget(tiny_model_dir):
    processor = tm.load_processor(tiny_model_dir, max_pixels=64 * 28 * 28)
    assert tm.model_budget(processor).max_pixels == 64 * 28 * 28
    with pytest.raises(FileNotFoundError):
        tm.load_processor(tiny_model_dir / "missing")


def test_dtype_names():
    assert loading._torch_dtype(None, "cpu") == torch.float32
    assert loading._torch_dtype("bf16", "cpu") == torch.bfloat16
    assert loading._torch_dtype(None, "cuda:0") == torch.bfloat16
    with pytest.raises(ValueError):
        loading._torch_dtype("int3", "cpu")


def _as_hub_layout(src, dst):
    """Rewrite a tiny checkpoint the way Qwen2.5-VL-7B-Instruct is laid out on the hub: flat
    config with ``rope_scaling`` mrope, ``preprocessor_config.json`` naming the torchvision image
    processor, ``Qwen2Tokenizer`` with the template in ``tokenizer_config.json`` and
    ``chat_template.json``, no ``processor_config.json``."""
    import json
    import shutil

    dst.mkdir()
    for name in ("model.safetensors", "tokenizer.json", "generation_config.json"):
        shutil.copy(src / name, dst / name)
    cfg = json.loads((src / "config.json").read_text())
    text = cfg.pop("text_config")
    rope = text.pop("rope_parameters")
    flat = {**cfg, **{k: v for k, v in text.items() if k not in ("model_type", "layer_types")},
            "rope_theta": rope["rope_theta"], "torch_dtype": cfg.pop("dtype"),
            "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]}}
    flat["vision_config"].pop("rope_parameters")
    flat["vision_config"]["model_type"] = "qwen2_5_vl"
    (dst / "config.json").write_text(json.dumps(flat))
    template = (src / "chat_template.jinja").read_text()
    (dst / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    (dst / "preprocessor_config.json").write_text(json.dumps({
        "min_pixels": 3136, "max_pixels": 100352, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2_5_VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor"}))
    (dst / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "bos_token": None, "model_max_length": 131072, "split_special_tokens": False,
        "clean_up_tokenization_spaces": False, "chat_template": template}))
    return dst


def test_loads_a_hub_layout_checkpoint(tiny, tiny_model_dir, tmp_path):
    model, processor = tiny
    hub_model, hub_processor = tm.load_model(_as_hub_layout(tiny_model_dir, tmp_path / "hub"))
    assert tm.model_budget(hub_processor) == PixelBudget(3136, 100352)
    assert hub_processor.chat_template == processor.chat_template
    assert tm.special_ids(hub_processor) == tm.special_ids(processor)
    text = '<think> a {"bbox_2d": [1, 22, 333, 4444]}\n</think>\n<answer>x</answer><|im_end|>'
    assert hub_processor.tokenizer.encode(text) == processor.tokenizer.encode(text)
    ids = torch.tensor([processor.tokenizer.encode(text)])
    with torch.no_grad():
        assert torch.allclose(hub_model(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
