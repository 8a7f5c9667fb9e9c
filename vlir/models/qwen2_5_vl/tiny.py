"""The tiny random Qwen2.5-VL: shapes in ``tiny.yaml`` beside this module (package data, packaged
name ``tiny``), built with :func:`vlir.models.tiny.build_tiny_model`.

The tokenizer is a byte-level BPE with Qwen's regex pre-tokenizer (digits split one by one),
trained locally with ``tokenizers`` on built-in text, carrying Qwen's special tokens; the Qwen3-VL
tiny model (:mod:`vlir.models.qwen3_vl.tiny`) reuses it and :func:`tiny_hf_config`.
"""

from __future__ import annotations

import random
from typing import Any

from vlir.models.qwen2_5_vl import QWEN_SPECIAL_TOKENS, QWEN_SPLIT_PATTERN, make_processor, qwen2_5_vl_chat_template

_CORPUS = """\
You are a helpful assistant.
What is the color of the car? What is written on the sign? Which object is to the left of the man?
Is the cup on the table? How many people are in the picture? What brand is shown on the bottle?
What is the title of the document? What is the total amount on the receipt? Answer the question.
The reasoning process and the answer are included in the <think> </think> and <answer> </answer> tags.
<think> To answer the question, let me look at the region where the object is located.
Let me zoom in on the text near the top of the image. The crop shows the word clearly.
The man is standing next to a red car. The sign says STOP. The bottle is on the left of the plate.
</think>
<answer>yes</answer> <answer>no</answer> <answer>red</answer> <answer>2</answer>
{"bbox_2d": [12, 34, 560, 78]} {"bbox_2d": [0, 0, 100, 100]}
the a an of in on at to is are was were it this that there these those with from by for and or but
left right top bottom above below behind front next near inside outside small large big tall short
red green blue yellow black white gray grey brown orange pink purple color colour shape size
person man woman child people dog cat car bus truck bicycle sign text word number table chair cup
0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14 $12.50 50% 1/2 (A) (B) (C) (D) A B C D
"quoted" 'single' [brackets] {braces} (parens) <tags> a, b; c: d! e? f. g-h i_j k/l m\\n
"""


def _corpus_lines(n_extra: int, seed: int) -> list[str]:
    """Built-in text, the VLM-R3 instruction, and synthetic lines with numbers, bbox JSON and tags,
    so that every character the chat format uses has been seen (byte-level BPE can encode anything,
    but merges make sequences short)."""
    from vlir.models.defaults import VLM_R3_INSTRUCTION

    rng = random.Random(seed)
    lines = _CORPUS.splitlines() + VLM_R3_INSTRUCTION.splitlines()
    words = " ".join(_CORPUS.split()).split(" ")
    for _ in range(n_extra):
        box = sorted(rng.sample(range(0, 1400), 4))
        text = " ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
        lines.append(f'<think> {text}\n\n{{"bbox_2d": [{box[0]}, {box[1]}, {box[2]}, {box[3]}]}}\n')
        lines.append(f"{text} </think>\n<answer>{rng.choice(words)}</answer>")
    return lines


def build_tokenizer(vocab_size: int = 2048, n_extra: int = 200, seed: int = 0):
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained locally, with Qwen's special tokens
    appended after the learned vocabulary (as in Qwen's own layout)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus_lines(n_extra, seed), trainer)
    tok.add_special_tokens(list(QWEN_SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        unk_token=None, bos_token=None, model_max_length=32768, padding_side="right",
        clean_up_tokenization_spaces=False, split_special_tokens=False,
    )


def tiny_hf_config(cfg: dict[str, Any], tokenizer, config_class: str = "Qwen2_5_VLConfig"):
    """The transformers config of the tiny YAML (Qwen2.5-VL's, or another family's class of the
    same shape); an optional ``text.mrope_interleaved`` goes to the rope parameters."""
    import transformers

    text, vision = dict(cfg["text"]), dict(cfg["vision"])
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    section = list(text.pop("mrope_section"))
    if sum(section) * 2 != head_dim:
        raise ValueError(f"mrope_section {section} must sum to head_dim/2 = {head_dim // 2}")
    vocab = -(-len(tokenizer) // 64) * 64
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    tie = bool(text.pop("tie_word_embeddings", False))
    rope = {"rope_type": "default", "rope_theta": float(text.pop("rope_theta", 1e6)), "mrope_section": section}
    if "mrope_interleaved" in text:
        rope["mrope_interleaved"] = bool(text.pop("mrope_interleaved"))
    text_config = dict(
        text, vocab_size=vocab, rope_parameters=rope,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=tie,
    )
    vision_config = dict(vision, out_hidden_size=text["hidden_size"])
    return getattr(transformers, config_class)(
        text_config=text_config, vision_config=vision_config, tie_word_embeddings=tie,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )


def parts(cfg: dict[str, Any], seed: int = 0) -> tuple[Any, Any, Any]:
    """The tiny random Qwen2.5-VL of the YAML dict ``cfg``: (model class, its config, processor), which
    :func:`vlir.models.tiny.build_tiny_model` initialises with ``seed`` and saves (deterministic for
    a seed; the caller's torch RNG is left untouched)."""
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    tok_cfg = cfg.get("tokenizer", {})
    tokenizer = build_tokenizer(int(tok_cfg.get("vocab_size", 2048)), int(tok_cfg.get("extra_lines", 200)), seed)
    tokenizer.chat_template = qwen2_5_vl_chat_template()
    ip_cfg, vision = cfg["image_processor"], cfg["vision"]
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=int(ip_cfg["min_pixels"]), max_pixels=int(ip_cfg["max_pixels"]),
        patch_size=int(vision["patch_size"]), merge_size=int(vision["spatial_merge_size"]),
        temporal_patch_size=int(vision["temporal_patch_size"]),
    )
    processor = make_processor(image_processor, tokenizer)
    return Qwen2_5_VLForConditionalGeneration, tiny_hf_config(cfg, tokenizer), processor


