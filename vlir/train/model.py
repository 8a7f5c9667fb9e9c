"""Qwen2.5-VL loading, and a tiny random Qwen2.5-VL built fully offline.

Training, rollout and evaluation all go through :func:`load_model` / :func:`load_processor`, so a
real local checkpoint (e.g. Qwen2.5-VL-7B-Instruct or the released VLM-R3 model) and the tiny model
of ``recipes/model/tiny.yaml`` load the same way. The tiny model is saved with ``save_pretrained``
(model + image processor + tokenizer + chat template) and is then indistinguishable, to every
later step, from a downloaded checkpoint, except for its sizes. Nothing here touches a model hub.

Two traps of this stack (see ``shared/STACK.md``) shape the loading code:

* torchvision is absent, so the image processor is always :class:`Qwen2VLImageProcessorPil`
  (a checkpoint's ``image_processor_type`` names the torchvision one), and the processor is
  :class:`VlirQwenProcessor`, a ``Qwen2_5_VLProcessor`` without a video processor.
* the tokenizer is a byte-level BPE with Qwen's regex pre-tokenizer (digits split one by one),
  trained locally with ``tokenizers`` on built-in text, carrying Qwen's special tokens.

torch and transformers are imported inside functions: ``import vlir.train.model`` stays light.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import random
from pathlib import Path
from typing import Any

import yaml

from vlir.geometry import PixelBudget

log = logging.getLogger(__name__)

DEFAULT_TINY_CONFIG = "recipes/model/tiny.yaml"

# Qwen2.5's special tokens, in the checkpoint's id order (151643...). Keeping the order keeps the
# tiny tokenizer's layout recognisable; ids differ, so code must look them up (see special_ids).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)
# Qwen2's pre-tokenizer split (as in its tokenizer.json): contractions, letter runs, single
# digits, punctuation runs, newlines, spaces.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Tokens a policy must never sample: they are inserted by the rollout engine, not generated.
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")

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


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def load_tiny_config(config: str | Path | dict[str, Any] = DEFAULT_TINY_CONFIG) -> dict[str, Any]:
    """The tiny model's YAML as a dict; a relative path is tried against the current directory,
    then against the repository root (so the default works from any working directory)."""
    if isinstance(config, dict):
        return config
    path = Path(config)
    if not path.is_absolute() and not path.exists():
        path = _repo_root() / path
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _corpus_lines(n_extra: int, seed: int) -> list[str]:
    """Built-in text, the VLM-R3 instruction, and synthetic lines with numbers, bbox JSON and tags,
    so that every character the chat format uses has been seen (byte-level BPE can encode anything,
    but merges make sequences short)."""
    from vlir.train.chat import VLM_R3_INSTRUCTION

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


def qwen2_5_vl_chat_template() -> str:
    """Qwen2.5-VL-Instruct's published chat template, as TRL ships it for identity checks."""
    return (importlib.resources.files("trl") / "chat_templates" / "qwen2_5_vl.jinja").read_text("utf-8")


def _processor_class():
    """``Qwen2_5_VLProcessor`` minus the video processor (which needs torchvision). Built lazily so
    importing this module does not import transformers."""
    global VlirQwenProcessor
    if VlirQwenProcessor is None:
        from transformers import Qwen2_5_VLProcessor

        class _VlirQwenProcessor(Qwen2_5_VLProcessor):
            """Qwen2.5-VL's processor for images only: same tokens, same ``mm_token_type_ids``."""

            def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
                super().__init__(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=None, chat_template=chat_template, **kwargs)

        _VlirQwenProcessor.__name__ = _VlirQwenProcessor.__qualname__ = "VlirQwenProcessor"
        VlirQwenProcessor = _VlirQwenProcessor
    return VlirQwenProcessor


VlirQwenProcessor = None  # the class, once _processor_class() has built it


def make_processor(image_processor, tokenizer, chat_template: str | None = None):
    """Wrap an image processor and a tokenizer into the project's Qwen2.5-VL processor."""
    template = chat_template or getattr(tokenizer, "chat_template", None) or qwen2_5_vl_chat_template()
    return _processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


def _tiny_hf_config(cfg: dict[str, Any], tokenizer):
    from transformers import Qwen2_5_VLConfig

    text, vision = dict(cfg["text"]), dict(cfg["vision"])
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    section = list(text.pop("mrope_section"))
    if sum(section) * 2 != head_dim:
        raise ValueError(f"mrope_section {section} must sum to head_dim/2 = {head_dim // 2}")
    vocab = -(-len(tokenizer) // 64) * 64
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    tie = bool(text.pop("tie_word_embeddings", False))
    text_config = dict(
        text, vocab_size=vocab,
        rope_parameters={"rope_type": "default", "rope_theta": float(text.pop("rope_theta", 1e6)),
                         "mrope_section": section},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=tie,
    )
    vision_config = dict(vision, out_hidden_size=text["hidden_size"])
    return Qwen2_5_VLConfig(
        text_config=text_config, vision_config=vision_config, tie_word_embeddings=tie,
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )


def build_tiny_model(out_dir: str | Path, config: str | Path | dict[str, Any] = DEFAULT_TINY_CONFIG,
                     seed: int = 0) -> Path:
    """Build the tiny random Qwen2.5-VL of ``config`` into ``out_dir`` and return the path.

    Deterministic for a seed (same files byte for byte); the caller's torch RNG is left untouched.
    The directory then loads with :func:`load_model` like any local checkpoint.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    cfg = load_tiny_config(config)
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
    hf_config = _tiny_hf_config(cfg, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(hf_config).to(torch.float32)
    ids = special_ids(processor)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["im_end"], ids["endoftext"]], pad_token_id=ids["pad"], bos_token_id=ids["endoftext"],
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built tiny Qwen2.5-VL (%d params, vocab %d) in %s", n_params, len(tokenizer), out)
    return out


def _torch_dtype(dtype: Any, device: str):
    import torch

    if dtype is None:
        return torch.float32 if str(device).startswith("cpu") else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if str(dtype) not in names:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
    return names[str(dtype)]


def load_processor(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a local Qwen2.5-VL checkpoint (tiny or real), images only.

    ``min_pixels``/``max_pixels`` override the checkpoint's image budget (the released VLM-R3 agent
    runs Qwen2.5-VL with 4*28*28 .. 2048*28*28 instead of the checkpoint's default).
    """
    from transformers import AutoTokenizer, Qwen2VLImageProcessorPil

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint directory at {path}")
    kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(path)
    template = getattr(tokenizer, "chat_template", None)
    if not template and (path / "chat_template.jinja").exists():
        template = (path / "chat_template.jinja").read_text("utf-8")
    elif not template and (path / "chat_template.json").exists():
        template = json.loads((path / "chat_template.json").read_text("utf-8"))["chat_template"]
    return make_processor(image_processor, tokenizer, template)


def load_model(path: str | Path, dtype: Any = None, device: str = "cpu", *, min_pixels: int | None = None,
               max_pixels: int | None = None, attn_implementation: str | None = None):
    """``(model, processor)`` from a local checkpoint directory: the tiny model or a real
    Qwen2.5-VL (hub layout: flat config, ``preprocessor_config.json``, ``Qwen2Tokenizer``).

    ``dtype`` None means fp32 on CPU and bf16 elsewhere; strings ``fp32``/``bf16``/``fp16`` work.
    ``min_pixels``/``max_pixels`` go to :func:`load_processor`. The model is returned in eval
    mode; trainers call ``.train()`` themselves.
    """
    from transformers import Qwen2_5_VLForConditionalGeneration

    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(Path(path), dtype=_torch_dtype(dtype, device), **kwargs)
    model.to(device)
    model.eval()
    return model, processor


def special_ids(processor) -> dict[str, int]:
    """Ids of the tokens the chat format and the rollout engine use. ``eos`` is ``<|im_end|>``
    (a chat turn ends there); ``pad`` is the tokenizer's pad token, else ``<|endoftext|>``."""
    tok = getattr(processor, "tokenizer", processor)
    names = {"endoftext": "<|endoftext|>", "im_start": "<|im_start|>", "im_end": "<|im_end|>",
             "vision_start": "<|vision_start|>", "vision_end": "<|vision_end|>",
             "vision_pad": "<|vision_pad|>", "image_pad": "<|image_pad|>", "video_pad": "<|video_pad|>"}
    ids: dict[str, int] = {}
    for key, token in names.items():
        tid = tok.convert_tokens_to_ids(token)
        if tid is None or tok.convert_ids_to_tokens(tid) != token:
            raise ValueError(f"tokenizer has no {token} token: not a Qwen2.5-VL tokenizer")
        ids[key] = int(tid)
    ids["eos"] = ids["im_end"]
    ids["pad"] = int(tok.pad_token_id) if tok.pad_token_id is not None else ids["endoftext"]
    return ids


def vision_token_ids(processor) -> list[int]:
    """Ids to suppress in generation: vision tokens are inserted by the engine, never sampled."""
    ids = special_ids(processor)
    return [ids[k] for k in ("vision_start", "vision_end", "vision_pad", "image_pad", "video_pad")]


def model_budget(processor) -> PixelBudget:
    """The image pixel budget of the processor: what ``smart_resize`` the model's view uses, and so
    the space ``{"bbox_2d": [...]}`` coordinates live in."""
    ip = getattr(processor, "image_processor", processor)
    size = ip.size
    get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    return PixelBudget(int(get("shortest_edge")), int(get("longest_edge")),
                       factor=int(ip.patch_size) * int(ip.merge_size))
