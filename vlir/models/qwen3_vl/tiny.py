"""A tiny random Qwen3-VL built fully offline, like the tiny Qwen2.5-VL (:mod:`vlir.models.qwen2_5_vl.tiny`).

Random weights of the real architecture (``Qwen3VLForConditionalGeneration``: interleaved 3-D rope,
deepstack), the same locally trained byte-level BPE as the Qwen2.5-VL tiny model plus Qwen3's added
tokens (``<think>``, ``<tool_call>``, ...), Qwen3-VL's published chat template, and a PIL image
processor with 16-pixel patches merged 2x2, mean = std = 0.5, no video processor. Shapes are the
packaged ``vlir/models/qwen3_vl/tiny.yaml`` (``build_tiny_model(out, "qwen3_vl_tiny")``); saved with
``save_pretrained``, it then loads like a downloaded Qwen3-VL checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

from vlir.models import qwen3_vl
from vlir.models.qwen2_5_vl import tiny as qwen2_5_vl_tiny


def build_tokenizer(vocab_size: int = 2048, n_extra: int = 200, seed: int = 0):
    """The tiny Qwen2.5 tokenizer (same BPE, same special tokens) with Qwen3's added tokens after
    them, in the released vocabulary's order; ``<think>`` and the tool tags are not special."""
    from tokenizers import AddedToken

    tokenizer = qwen2_5_vl_tiny.build_tokenizer(vocab_size, n_extra, seed)
    tokenizer.add_tokens([AddedToken(t, special=t in qwen3_vl.SPECIAL_ADDED, normalized=False)
                          for t in qwen3_vl.QWEN3_ADDED_TOKENS])
    tokenizer.chat_template = qwen3_vl.chat_template()
    return tokenizer


def parts(cfg: dict[str, Any], seed: int = 0) -> tuple[Any, Any, Any]:
    """The tiny random Qwen3-VL of the YAML dict ``cfg``: (model class, its config, processor), which
    :func:`vlir.models.tiny.build_tiny_model` initialises with ``seed`` and saves (deterministic for
    a seed; the caller's torch RNG is left untouched)."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLForConditionalGeneration

    vision = cfg["vision"]
    side = math.isqrt(int(vision["num_position_embeddings"]))
    if side * side != int(vision["num_position_embeddings"]):
        raise ValueError(f"vision num_position_embeddings {vision['num_position_embeddings']} must be a square")
    if max(vision["deepstack_visual_indexes"]) >= vision["depth"]:
        raise ValueError(f"deepstack_visual_indexes {vision['deepstack_visual_indexes']} must be < depth {vision['depth']}")
    tok_cfg = cfg.get("tokenizer", {})
    tokenizer = build_tokenizer(int(tok_cfg.get("vocab_size", 2048)), int(tok_cfg.get("extra_lines", 200)), seed)
    ip_cfg = cfg["image_processor"]
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=int(ip_cfg["min_pixels"]), max_pixels=int(ip_cfg["max_pixels"]),
        patch_size=int(vision["patch_size"]), merge_size=int(vision["spatial_merge_size"]),
        temporal_patch_size=int(vision["temporal_patch_size"]), image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )
    processor = qwen3_vl.make_processor(image_processor, tokenizer)
    hf_config = qwen2_5_vl_tiny.tiny_hf_config(cfg, tokenizer, "Qwen3VLConfig")
    return Qwen3VLForConditionalGeneration, hf_config, processor
