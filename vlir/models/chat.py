"""Record -> Qwen2.5-VL chat -> tokens: the one chat rendering SFT, the rollout engine and
evaluation share.

The format is the released VLM-R3 model's (``justgogorunrun/VLM-R3``: ``data_qwen.py`` for SFT,
``r3_vllm.py`` for the agent loop):

* user turn = the original image, then the question with the crop-tool instruction appended
  (:data:`VLM_R3_INSTRUCTION`, which starts with a newline), under Qwen2.5-VL's chat template and
  its default system prompt;
* assistant turn = text segments interleaved with the crop images, in one turn::

      <think> {think} ...\\n\\n{"bbox_2d": [x1, y1, x2, y2]}\\n  <crop 1>  {think} ... </think>\\n<answer>{answer}</answer><|im_end|>

  Each look is written as ``{"bbox_2d": [x1, y1, x2, y2]}``: integer pixels of the image as the
  model sees it (``smart_resize`` with the processor's min/max pixels; :func:`vlir.geometry.to_model`),
  closed as ``]}`` plus a newline, immediately followed by the crop image (rendered by
  :func:`vlir.crops.render_crop`, stored in the shard). The agent's stop strings end at ``]}``.

Token contract (the rollout engine and oracle replay rely on it):

1. The prompt is ``encode(text before the image) + image_block + encode(text after the image)``,
   where ``encode`` is ``tokenizer.encode(s, add_special_tokens=False)`` and ``image_block`` is
   :func:`image_block_ids`: ``<|vision_start|>`` + N x ``<|image_pad|>`` + ``<|vision_end|>`` with
   N = grid.prod() // merge_size**2. The prompt ends with ``<|im_start|>assistant\\n``.
2. The assistant turn is ``encode(segment_0) + image_block(crop_1) + encode(segment_1) + ... +
   encode(segment_k) + [<|im_end|>]``: every text segment of :func:`assistant_segments` is
   tokenized ON ITS OWN (never across an image, never decoded and re-encoded), and the sequence
   ends at ``<|im_end|>`` (no trailing newline), which is where generation stops. A rollout that
   keeps its sampled ids and inserts image blocks therefore reproduces exactly the ids of
   :func:`encode_record` when it samples (or is forced through) the same segment tokens.
3. Labels are -100 on every prompt token and on every ``<|vision_start|>``, ``<|image_pad|>``,
   ``<|vision_end|>``; the assistant text (bbox JSON included) and the closing ``<|im_end|>`` are
   learned. ``mm_token_type_ids`` is 1 exactly on ``<|image_pad|>`` (what Qwen2.5-VL's 3-D rope
   needs), images are in order: the original, then the crops.

Tensors are 1-D per record (``pixel_values`` is ``(patches, dim)``, ``image_grid_thw`` ``(n, 3)``);
:func:`collate` pads a list of them into a batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Sequence, Union

from vlir import geometry
from vlir.config import Config, option
from vlir.crops import decode_png, render_crop
from vlir.geometry import CROP_PIXELS, MODEL_PIXELS, PixelBudget
from vlir.models.defaults import VLM_R3_INSTRUCTION
from vlir.models.registry import family_of_processor
from vlir.models.tokens import crop_budget, model_budget, special_ids
from vlir.records import Box, Crop, Look, Record, Think

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

IGNORE_INDEX = -100


Segment = Union[str, Crop]


@dataclass(frozen=True)
class ChatConfig(Config):
    """How a record becomes a chat (the ``chat`` section of a trainer recipe). Defaults are the
    released VLM-R3 model's conventions; the budgets default to the default family's.

    Build it with :meth:`for_processor` so ``model_budget`` is the processor's: the bbox numbers
    must be pixels of the image exactly as the processor resizes it. A budget is written
    ``{min_pixels: N, max_pixels: N}`` (:meth:`vlir.geometry.PixelBudget.parse`).
    """

    kind: ClassVar[str] = "chat"
    section: ClassVar[str] = "chat"

    instruction: str = option(VLM_R3_INSTRUCTION, "Appended to the question, as the released agent does.")
    system: str | None = option(None, "System prompt (null: the chat template's default).")
    model_budget: PixelBudget = option(MODEL_PIXELS, "The model's view of the original image: the "
                                       "space of the bbox numbers (for_processor: the processor's).")
    crop_budget: PixelBudget = option(CROP_PIXELS, "Crops are rendered within this budget (vlir.crops), "
                                      "on the model family's grid.")
    think_open: str = option("<think> ", "Opens the reasoning.")
    look_separator: str = option("\n\n", "Between reasoning text and a bbox JSON.")
    think_close: str = option(" </think>\n", "Closes the reasoning; its leading space is dropped after "
                                            "a crop image.")
    answer_open: str = option("<answer>", "Opens the answer.")
    answer_close: str = option("</answer>", "Closes the answer.")

    @classmethod
    def for_processor(cls, processor: Any, **overrides: Any) -> "ChatConfig":
        """The processor's view as ``model_budget`` (its family's box convention included) and the
        crop knob (``crop_budget``; None or absent: the family's default) on its family's grid."""
        overrides.setdefault("model_budget", model_budget(processor))
        knob = overrides.get("crop_budget")
        overrides["crop_budget"] = crop_budget(processor, None if knob is None else PixelBudget.parse(knob))
        return cls.from_dict(overrides)

    @classmethod
    def default(cls, model_budget: PixelBudget | None = None) -> "ChatConfig":
        """The default config (with ``model_budget`` when given), made once: a checked config costs
        ~0.1 ms, too much to make per record."""
        return _default_config(model_budget)


@functools.lru_cache(maxsize=64)
def _default_config(model_budget: PixelBudget | None) -> ChatConfig:
    return ChatConfig() if model_budget is None else ChatConfig(model_budget=model_budget)


def _resolve_cfg(processor: Any, cfg: ChatConfig | None) -> ChatConfig:
    if cfg is None:
        return ChatConfig.for_processor(processor)
    if cfg.model_budget != model_budget(processor):
        raise ValueError(f"ChatConfig.model_budget {cfg.model_budget} differs from the processor's "
                         f"{model_budget(processor)}: bbox numbers would not match the model's view; "
                         "build the config with ChatConfig.for_processor(processor)")
    return cfg


def bbox_2d(box: Box, width: int, height: int, budget: PixelBudget) -> list[int]:
    """The integer model-space box written for a look: clipped to the image, rounded
    (:func:`vlir.geometry.to_model`), and widened to one model pixel where rounding collapsed it
    (floor/ceil of the exact values), so it parses back to a proper box within one model pixel."""
    clipped = geometry.clip(box, width, height)
    if clipped is None:
        raise ValueError(f"look box {box.as_list()} lies outside the {width}x{height} image")
    mw, mh = geometry.box_space(width, height, budget)
    x1, y1, x2, y2 = geometry.to_model(clipped, width, height, budget)
    sx, sy = mw / width, mh / height
    if x2 <= x1:
        x1, x2 = _one_pixel(clipped.x1 * sx, clipped.x2 * sx, mw)
    if y2 <= y1:
        y1, y2 = _one_pixel(clipped.y1 * sy, clipped.y2 * sy, mh)
    return [x1, y1, x2, y2]


def _one_pixel(lo: float, hi: float, size: int) -> tuple[int, int]:
    start = min(math.floor(lo), size - 1)
    return start, max(start + 1, min(math.ceil(hi), size))


def format_look(coords: Sequence[int]) -> str:
    """``{"bbox_2d": [x1, y1, x2, y2]}`` exactly as the released model writes it
    (:func:`vlir.protocol.render_call`, integer pixels)."""
    from vlir.protocol import render_call

    return render_call([int(v) for v in coords])


def assistant_segments(record: Record, cfg: ChatConfig | None = None,
                       image: "Image.Image | None" = None) -> list[Segment]:
    """The assistant turn as text pieces and crops in order: ``[text, crop, text, crop, ..., text]``.

    Every text piece before a crop ends with the bbox JSON and a newline. The crops are the record's
    stored crops; a record without stored crops gets them rendered from ``image`` by the crop rule.
    """
    cfg = cfg or ChatConfig.default()
    if record.chain is None:
        raise ValueError(f"record {record.sample.id} has no chain (a reject?)")
    crops = _record_crops(record, cfg, image)
    width, height = record.sample.width, record.sample.height
    segments: list[Segment] = []
    buf = cfg.think_open
    n_look = 0
    for step in record.chain.steps:
        if isinstance(step, Think):
            text = step.text.strip()
            if not text:
                continue
            if buf and not buf[-1].isspace():
                buf += " "
            buf += text
        elif isinstance(step, Look):
            if buf and not buf[-1].isspace():
                buf += cfg.look_separator
            coords = bbox_2d(step.box, width, height, cfg.model_budget)
            segments += [buf + format_look(coords) + "\n", crops[n_look]]
            n_look += 1
            buf = ""
        else:  # pragma: no cover - Chain only holds Think/Look
            raise TypeError(f"unknown step {step!r}")
    close = cfg.think_close if buf and not buf[-1].isspace() else cfg.think_close.lstrip(" ")
    segments.append(buf + close + cfg.answer_open + record.chain.answer.strip() + cfg.answer_close)
    return segments


def assistant_text(segments: Sequence[Segment]) -> str:
    """The learned text of the assistant turn (the text segments joined, without images)."""
    return "".join(s for s in segments if isinstance(s, str))


def _record_crops(record: Record, cfg: ChatConfig, image: "Image.Image | None") -> list[Crop]:
    looks = record.chain.looks if record.chain else []
    if len(record.crops) == len(looks):
        return list(record.crops)
    if record.crops:
        raise ValueError(f"record {record.sample.id} has {len(record.crops)} crops for {len(looks)} looks")
    if image is None:
        raise ValueError(f"record {record.sample.id} stores no crops; pass the original image to render them")
    return [render_crop(image, look.box, cfg.crop_budget) for look in looks]


def user_messages(question: str, cfg: ChatConfig) -> list[dict[str, Any]]:
    """The chat messages of the prompt, in the processor's ``apply_chat_template`` form."""
    messages: list[dict[str, Any]] = []
    if cfg.system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": cfg.system}]})
    messages.append({"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": question + cfg.instruction}]})
    return messages


def prompt_text(question: str, processor: Any, cfg: ChatConfig) -> str:
    """The rendered prompt (one image placeholder), ending with the assistant header."""
    return processor.apply_chat_template(user_messages(question, cfg), tokenize=False,
                                         add_generation_prompt=True)


def image_block_ids(grid_thw: Any, processor: Any) -> list[int]:
    """``<|vision_start|>`` + N x ``<|image_pad|>`` + ``<|vision_end|>``, N = t*h*w // merge**2."""
    ids = special_ids(processor)
    merge = int(getattr(processor.image_processor, "merge_size", 2))
    t, h, w = (int(v) for v in grid_thw)
    return [ids["vision_start"]] + [ids["image_pad"]] * (t * h * w // merge**2) + [ids["vision_end"]]


def encode_text(text: str, processor: Any) -> list[int]:
    """One text segment -> ids, on its own (special tokens in it are parsed as such)."""
    return list(processor.tokenizer.encode(text, add_special_tokens=False))


def image_inputs(images: Sequence["Image.Image"], processor: Any) -> dict[str, Any]:
    """``pixel_values`` and ``image_grid_thw`` for images in order (each processed independently,
    so a rollout processing a crop alone gets the same rows)."""
    rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    out = processor.image_processor(images=rgb, return_tensors="pt")
    return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}


def _prompt_parts(question: str, processor: Any, cfg: ChatConfig) -> tuple[list[int], list[int]]:
    """Ids of the prompt text before and after its one image placeholder (the family's image block)."""
    parts = prompt_text(question, processor, cfg).split(family_of_processor(processor).image_block)
    if len(parts) != 2:
        raise ValueError(f"the chat template must render exactly one image placeholder, got {len(parts) - 1}")
    return encode_text(parts[0], processor), encode_text(parts[1], processor)


def _prompt_ids(question: str, grid_thw: Any, processor: Any, cfg: ChatConfig) -> list[int]:
    before, after = _prompt_parts(question, processor, cfg)
    return before + image_block_ids(grid_thw, processor) + after


def _tensors(ids: list[int], labels: list[int] | None, vision: dict[str, Any], processor: Any) -> dict[str, Any]:
    import torch

    input_ids = torch.tensor(ids, dtype=torch.long)
    out = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "mm_token_type_ids": (input_ids == special_ids(processor)["image_pad"]).long(),
        "pixel_values": vision["pixel_values"],
        "image_grid_thw": vision["image_grid_thw"],
    }
    if labels is not None:
        out["labels"] = torch.tensor(labels, dtype=torch.long)
    return out


def _check_image(record: Record, image: "Image.Image") -> None:
    s = record.sample
    if (s.width, s.height) != tuple(image.size):
        raise ValueError(f"image is {image.size[0]}x{image.size[1]} but record {s.id} says {s.width}x{s.height}")


def encode_prompt(question: str, image: "Image.Image", processor: Any, cfg: ChatConfig | None = None) -> dict[str, Any]:
    """The user turn + ``<|im_start|>assistant\\n``: where the rollout engine starts generating.

    Returns 1-D ``input_ids``, ``attention_mask``, ``mm_token_type_ids``, and the original image's
    ``pixel_values``/``image_grid_thw``.
    """
    cfg = _resolve_cfg(processor, cfg)
    vision = image_inputs([image], processor)
    return _tensors(_prompt_ids(question, vision["image_grid_thw"][0], processor, cfg), None, vision, processor)


def encode_record(record: Record, image: "Image.Image", processor: Any, cfg: ChatConfig | None = None) -> dict[str, Any]:
    """A record as one SFT example: ``input_ids``, ``labels``, ``attention_mask``, ``pixel_values``,
    ``image_grid_thw``, ``mm_token_type_ids`` (images: the original, then the crops in order)."""
    cfg = _resolve_cfg(processor, cfg)
    _check_image(record, image)
    segments = assistant_segments(record, cfg, image)
    crops = [decode_png(s.png) for s in segments if isinstance(s, Crop)]
    vision = image_inputs([image, *crops], processor)
    grids = vision["image_grid_thw"]
    ids = _prompt_ids(record.sample.question, grids[0], processor, cfg)
    labels = [IGNORE_INDEX] * len(ids)
    n_image = 1
    for seg in segments:
        if isinstance(seg, str):
            piece = encode_text(seg, processor)
            ids += piece
            labels += piece
        else:
            block = image_block_ids(grids[n_image], processor)
            n_image += 1
            ids += block
            labels += [IGNORE_INDEX] * len(block)
    im_end = special_ids(processor)["im_end"]
    ids.append(im_end)
    labels.append(im_end)
    return _tensors(ids, labels, vision, processor)


def num_tokens(record: Record, processor: Any, cfg: ChatConfig | None = None) -> int:
    """The length of :func:`encode_record`'s ``input_ids`` without decoding or processing any
    image (grids follow from the stored sizes): cheap enough for length-grouped batching."""
    cfg = _resolve_cfg(processor, cfg)
    budget = cfg.model_budget

    def image_tokens(width: int, height: int) -> int:
        h, w = geometry.smart_resize(height, width, budget)
        return (h // budget.factor) * (w // budget.factor) + 2  # merged patches + start/end

    s = record.sample
    before, after = _prompt_parts(s.question, processor, cfg)
    total = len(before) + image_tokens(s.width, s.height) + len(after)
    for seg in assistant_segments(record, cfg):
        total += len(encode_text(seg, processor)) if isinstance(seg, str) else image_tokens(seg.width, seg.height)
    return total + 1


def collate(batch: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad records from :func:`encode_record` into a training batch: ``input_ids`` with
    ``pad_id``, ``labels`` with -100, ``attention_mask``/``mm_token_type_ids`` with 0; images of
    all records concatenated in order (``pixel_values`` rows, ``image_grid_thw`` rows)."""
    import torch

    if not batch:
        raise ValueError("cannot collate an empty batch")
    length = max(int(b["input_ids"].shape[0]) for b in batch)
    fills = {"input_ids": pad_id, "labels": IGNORE_INDEX, "attention_mask": 0, "mm_token_type_ids": 0}
    out: dict[str, Any] = {}
    for key, fill in fills.items():
        if not all(key in b for b in batch):
            continue
        rows = torch.full((len(batch), length), fill, dtype=torch.long)
        for i, b in enumerate(batch):
            rows[i, : b[key].shape[0]] = b[key]
        out[key] = rows
    with_images = [b for b in batch if b.get("pixel_values") is not None]
    if with_images:
        out["pixel_values"] = torch.cat([b["pixel_values"] for b in with_images], dim=0)
        out["image_grid_thw"] = torch.cat([b["image_grid_thw"] for b in with_images], dim=0)
    return out
