"""A tiny random Qwen2.5-VL built fully offline, for CPU tests and the embedded default of
``make train``.

Its shapes are package data (``vlir/models/tiny_qwen2_5_vl.yaml``, read through
:mod:`importlib.resources`, so building works from an installed wheel). The model is saved with
``save_pretrained`` (model + image processor + tokenizer + chat template) and is then
indistinguishable, to every later step, from a downloaded checkpoint, except for its sizes.
The tokenizer is a byte-level BPE with Qwen's regex pre-tokenizer (digits split one by one),
trained locally with ``tokenizers`` on built-in text, carrying Qwen's special tokens.
"""

from __future__ import annotations

import importlib.resources
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlir.config import Config, ConfigError, option
from vlir.models.qwen2_5_vl import QWEN_SPECIAL_TOKENS, QWEN_SPLIT_PATTERN, make_processor, qwen2_5_vl_chat_template
from vlir.models.tokens import special_ids

log = logging.getLogger(__name__)

#: the packaged tiny model's name; any other value of ``build_model`` is a YAML path
DEFAULT_TINY_CONFIG = "tiny"
_PACKAGED = {"tiny": "tiny_qwen2_5_vl.yaml", "qwen3_vl_tiny": "tiny_qwen3_vl.yaml"}

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


@dataclass
class TinyModelConfig(Config):
    """The tiny model's YAML: four sections, each a mapping of Qwen2.5-VL config keys."""

    kind = "tiny model"

    text: dict = option({}, "Qwen2.5-VL text config keys (hidden_size, layers, heads, mrope_section ...)")
    vision: dict = option({}, "Qwen2.5-VL vision config keys (depth, patch_size, spatial_merge_size ...)")
    tokenizer: dict = option({}, "byte-level BPE: vocab_size, extra_lines (synthetic training lines)")
    image_processor: dict = option({}, "min_pixels and max_pixels of the image processor")
    family: str = option("qwen2_5_vl", "The model family (vlir.models) whose tiny builder reads this YAML.")

    def validate(self) -> list[str]:
        return [f"{name} must not be empty" for name in ("text", "vision", "image_processor")
                if not getattr(self, name)]


def load_tiny_config(config: str | Path | dict[str, Any] = DEFAULT_TINY_CONFIG) -> dict[str, Any]:
    """The tiny model's YAML as a dict: ``"tiny"`` is the packaged one; any other string is a path
    (relative to the current directory)."""
    if isinstance(config, dict):
        return config
    if str(config) in _PACKAGED:
        resource = importlib.resources.files("vlir.models") / _PACKAGED[str(config)]
        with importlib.resources.as_file(resource) as path:
            return TinyModelConfig.load(path).to_dict()
    if not Path(config).is_file():
        raise ConfigError(f"{config}: no tiny model YAML there (or use the packaged name 'tiny')")
    return TinyModelConfig.load(config).to_dict()


def _corpus_lines(n_extra: int, seed: int) -> list[str]:
    """Built-in text, the VLM-R3 instruction, and synthetic lines with numbers, bbox JSON and tags,
    so that every character the chat format uses has been seen (byte-level BPE can encode anything,
    but merges make sequences short)."""
    from vlir.models.chat import VLM_R3_INSTRUCTION

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


def _tiny_hf_config(cfg: dict[str, Any], tokenizer, config_class: str = "Qwen2_5_VLConfig"):
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


def build_tiny_model(out_dir: str | Path, config: str | Path | dict[str, Any] = DEFAULT_TINY_CONFIG,
                     seed: int = 0) -> Path:
    """Build the tiny random model of ``config`` into ``out_dir`` and return the path: Qwen2.5-VL,
    or the YAML's ``family``'s own builder (``"qwen3_vl_tiny"``: :mod:`vlir.models.qwen3_vl_tiny`).

    Deterministic for a seed (same files byte for byte); the caller's torch RNG is left untouched.
    The directory then loads with :func:`vlir.models.load_model` like any local checkpoint.
    """
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    from vlir.models.family import family_for

    cfg = load_tiny_config(config)
    family = family_for(cfg.get("family", "qwen2_5_vl"))
    if family.build_tiny is not None:  # the family builds its own architecture from the same YAML
        return family.build_tiny(out_dir, cfg, seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
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
    return save_tiny(Qwen2_5_VLForConditionalGeneration, _tiny_hf_config(cfg, tokenizer), processor, out, seed)


def save_tiny(model_class: Any, hf_config: Any, processor: Any, out: Path, seed: int) -> Path:
    """Initialise ``model_class(hf_config)`` with ``seed`` (the caller's torch RNG untouched), give it
    the chat's stop tokens, and save it with ``processor``: the shared end of every tiny builder."""
    import torch
    from transformers import GenerationConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(hf_config).to(torch.float32)
    ids = special_ids(processor)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["im_end"], ids["endoftext"]], pad_token_id=ids["pad"], bos_token_id=ids["endoftext"],
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built tiny %s (%d params, vocab %d) in %s", hf_config.model_type, n_params, len(processor.tokenizer), out)
    return out
