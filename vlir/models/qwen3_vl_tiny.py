"""A tiny random Qwen3-VL built fully offline, like the tiny Qwen2.5-VL.

Random weights of the real architecture (``Qwen3VLForConditionalGeneration``: interleaved 3-D rope,
deepstack), the same locally trained byte-level BPE as the Qwen2.5-VL tiny model plus Qwen3's added
tokens (``<think>``, ``<tool_call>``, ...), Qwen3-VL's published chat template, and a PIL image
processor with 16-pixel patches merged 2x2 and no video processor. Saved with ``save_pretrained``,
it then loads like a downloaded Qwen3-VL checkpoint (:func:`vlir.models.qwen3_vl.load_processor`).
Shapes come from ``recipes/model/qwen3_vl_tiny.yaml``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vlir.models import qwen3_vl

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "recipes/model/qwen3_vl_tiny.yaml"


def build_tokenizer(vocab_size: int = 2048, n_extra: int = 200, seed: int = 0):
    """The tiny Qwen2.5 tokenizer (same BPE, same special tokens) with Qwen3's added tokens after
    them, in the released vocabulary's order; ``<think>`` and the tool tags are not special."""
    from tokenizers import AddedToken

    from vlir.train.model import build_tokenizer as build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer(vocab_size, n_extra, seed)
    tokenizer.add_tokens([AddedToken(t, special=t in qwen3_vl._SPECIAL_ADDED, normalized=False)
                          for t in qwen3_vl.QWEN3_ADDED_TOKENS])
    tokenizer.chat_template = qwen3_vl.chat_template()
    return tokenizer


def hf_config(cfg: dict[str, Any], tokenizer):
    """The ``Qwen3VLConfig`` of the tiny YAML: vocabulary padded to 64, token ids from the tokenizer."""
    from transformers import Qwen3VLConfig

    text, vision = dict(cfg["text"]), dict(cfg["vision"])
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    section = list(text.pop("mrope_section"))
    if sum(section) * 2 != head_dim:
        raise ValueError(f"mrope_section {section} must sum to head_dim/2 = {head_dim // 2}")
    if not qwen3_vl.is_square(int(vision["num_position_embeddings"])):
        raise ValueError(f"vision num_position_embeddings {vision['num_position_embeddings']} must be a square")
    if max(vision["deepstack_visual_indexes"]) >= vision["depth"]:
        raise ValueError(f"deepstack_visual_indexes {vision['deepstack_visual_indexes']} must be < depth {vision['depth']}")
    vocab = -(-len(tokenizer) // 64) * 64
    tid = tokenizer.convert_tokens_to_ids
    tie = bool(text.pop("tie_word_embeddings", False))
    text_config = dict(
        text, vocab_size=vocab, head_dim=head_dim,
        rope_parameters={"rope_type": "default", "rope_theta": float(text.pop("rope_theta", 5e6)),
                         "mrope_section": section, "mrope_interleaved": True},
        bos_token_id=tid("<|endoftext|>"), eos_token_id=tid("<|im_end|>"), pad_token_id=tid("<|endoftext|>"),
        tie_word_embeddings=tie,
    )
    return Qwen3VLConfig(
        text_config=text_config, vision_config=dict(vision, out_hidden_size=text["hidden_size"]),
        tie_word_embeddings=tie, image_token_id=tid("<|image_pad|>"), video_token_id=tid("<|video_pad|>"),
        vision_start_token_id=tid("<|vision_start|>"), vision_end_token_id=tid("<|vision_end|>"),
    )


def build_tiny_qwen3_vl(out_dir: str | Path, config: str | Path | dict[str, Any] = DEFAULT_CONFIG,
                        seed: int = 0) -> Path:
    """Build the tiny random Qwen3-VL of ``config`` into ``out_dir`` and return the path.

    Deterministic for a seed; the caller's torch RNG is left untouched.
    """
    import torch
    from transformers import GenerationConfig

    from vlir.train.model import load_tiny_config

    cfg = load_tiny_config(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok_cfg = cfg.get("tokenizer", {})
    tokenizer = build_tokenizer(int(tok_cfg.get("vocab_size", 2048)), int(tok_cfg.get("extra_lines", 200)), seed)
    ip_cfg, vision = cfg["image_processor"], cfg["vision"]
    ip = qwen3_vl.image_processor(ip_cfg["min_pixels"], ip_cfg["max_pixels"], vision["patch_size"],
                                  vision["spatial_merge_size"], vision["temporal_patch_size"])
    processor = qwen3_vl.make_processor(ip, tokenizer)
    config_hf = hf_config(cfg, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = qwen3_vl.model_class()(config_hf).to(torch.float32)
    tid = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        eos_token_id=[tid("<|im_end|>"), tid("<|endoftext|>")], pad_token_id=tid("<|endoftext|>"),
        bos_token_id=tid("<|endoftext|>"),
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built tiny Qwen3-VL (%d params, vocab %d) in %s", n_params, len(tokenizer), out)
    return out
