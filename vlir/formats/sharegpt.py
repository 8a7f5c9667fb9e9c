"""``vlir export --format sharegpt``: a corpus as LLaMA-Factory's multimodal sharegpt dataset.

The format is LLaMA-Factory's documented one (``data/README.md``, "Multimodal Image Dataset" and
"OpenAI Format", hiyouga/LLaMA-Factory@2ad9871bb402d0d4682466970bd404c650f05b9c; example
``data/mllm_demo.json`` @eb7130f2853ec7db1470225ae9f026a4049b965a): a JSON list of
``{"messages": [{"role", "content"}...], "images": [paths]}``, one ``<image>`` placeholder per
image, images in placeholder order, and a ``dataset_info.json`` entry naming the columns and role
tags. Its Qwen2-VL plugin (``src/llamafactory/data/mm_plugin.py``
@e679cbb2ae9195f915c403bb832841960ec1b7c9, ``Qwen2vlPlugin.process_messages``) expands the
placeholders of *every* message, assistant turns included, in order, and refuses a count that
differs from ``len(images)``: so a crop can sit inside the assistant turn right after its call,
as in vlir's own format. ms-swift reads the same ``messages`` + ``images`` layout.

Each accepted record becomes one user turn (``<image>`` + question + the chat instruction) and one
assistant turn: vlir's own rendering of the record (:func:`vlir.models.chat.assistant_segments`,
boxes in model pixels of the given budget), each crop as ``<image>`` right after the
``{"bbox_2d": [...]}`` call that made it. The original images are copied under ``DEST/images``
(or referenced), the crops written as PNG files under ``DEST/crops``; paths are relative to DEST,
which is LLaMA-Factory's ``dataset_dir``. Note: LLaMA-Factory learns the crop's vision tokens
inside the assistant turn like text (vlir's trainer masks them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import vlir
from vlir import images
from vlir.geometry import MODEL_PIXELS, PixelBudget
from vlir.records import Crop, Record

log = logging.getLogger(__name__)

PLACEHOLDER = "<image>"  # LLaMA-Factory's IMAGE_PLACEHOLDER
DATA_FILE = "vlir_sharegpt.json"
DATASET_INFO = "dataset_info.json"
DATASET_NAME = "vlir"
DATASET_ENTRY = {
    "file_name": DATA_FILE, "formatting": "sharegpt",
    "columns": {"messages": "messages", "images": "images"},
    "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
             "assistant_tag": "assistant", "system_tag": "system"},
}


class ShareGPTExportError(Exception):
    """The export cannot run (bad DEST, corpus not found...)."""


@dataclass
class ShareGPTConfig:
    """How a corpus becomes a LLaMA-Factory dataset."""

    #: the model's view the bbox numbers are written in (its family's box convention included)
    budget: PixelBudget = field(default_factory=lambda: MODEL_PIXELS)
    #: the user turn's instruction after the question (vlir's chat default: the VLM-R3 one)
    instruction: str | None = None
    #: "copy" the originals under DEST/images or "reference" them by a path relative to DEST
    images: str = "copy"
    #: only these splits ("train" or "gqa/train"); empty: all
    splits: tuple[str, ...] = ()


def conversation(record: Record, cfg: ShareGPTConfig) -> tuple[list[dict[str, str]], list[Crop]]:
    """The record's ``messages`` (placeholders in place) and the crops in placeholder order after
    the original image. Raises ValueError when the record's text itself holds ``<image>``."""
    from vlir.models.chat import ChatConfig, assistant_segments

    chat = ChatConfig(model_budget=cfg.budget) if cfg.instruction is None else \
        ChatConfig(model_budget=cfg.budget, instruction=cfg.instruction)
    segments = assistant_segments(record, chat)
    texts = [record.sample.question, chat.instruction] + [s for s in segments if isinstance(s, str)]
    if any(PLACEHOLDER in t for t in texts) or (chat.system and PLACEHOLDER in chat.system):
        raise ValueError(f"its text contains {PLACEHOLDER!r}, which LLaMA-Factory would read as an image")
    answer = "".join(PLACEHOLDER if isinstance(s, Crop) else s for s in segments)
    messages = [{"role": "system", "content": chat.system}] if chat.system else []
    messages += [{"role": "user", "content": PLACEHOLDER + record.sample.question + chat.instruction},
                 {"role": "assistant", "content": answer}]
    return messages, [s for s in segments if isinstance(s, Crop)]


def export_sharegpt(out: Path, dest: Path, cfg: ShareGPTConfig | None = None,
                    progress: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Write ``dest/vlir_sharegpt.json`` (+ images, crops, ``dataset_info.json``) from the accepted
    records of corpus ``out``; ``dest`` must be new or empty. Returns the summary."""
    from vlir.corpus.shards import Corpus, atomic_write_json
    from vlir.formats.vlmr3 import ExportConfig, ExportError, _Exporter, _selected, write_json_list

    cfg = cfg or ShareGPTConfig()
    out, dest = Path(out), Path(dest)
    try:
        corpus = Corpus(out)
        splits = _selected(corpus, cfg.splits)
        files = _Exporter(corpus, dest, ExportConfig(budget=cfg.budget, images=cfg.images))
    except (FileNotFoundError, ExportError, ValueError) as exc:
        raise ShareGPTExportError(str(exc)) from None
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ShareGPTExportError(f"{dest} exists and is not an empty folder; choose a new DEST")
    dest.mkdir(parents=True, exist_ok=True)
    data_path, skipped = dest / DATA_FILE, 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal skipped
        count = 0  # rows written so far: names the record's crop files
        for source, split in splits:
            for record in corpus.records(source, split):
                try:
                    messages, crops = conversation(record, cfg)
                except ValueError as exc:
                    log.warning("sharegpt: record %s left out: %s", record.sample.id, exc)
                    skipped += 1
                    continue
                try:
                    paths = [files.image_path(record)] + files.crop_paths(record, count, crops)
                except (images.ImageError, ExportError) as exc:
                    raise ShareGPTExportError(f"{out}: record {record.sample.id}: {exc}") from None
                yield {"messages": messages, "images": paths, "id": record.sample.id,
                       "answers": list(record.sample.answers)}
                count += 1

    count = write_json_list(data_path, rows(), progress)
    atomic_write_json(dest / DATASET_INFO, {DATASET_NAME: DATASET_ENTRY})
    summary = {"format": "sharegpt", "vlir_version": vlir.__version__, "corpus": str(out.resolve()),
               "data_file": DATA_FILE, "dataset_info": DATASET_INFO, "records": count, "skipped": skipped,
               "splits": [f"{a}/{b}" for a, b in splits], "min_pixels": cfg.budget.min_pixels,
               "max_pixels": cfg.budget.max_pixels, "images": cfg.images, **dict(sorted(files.stats.items()))}
    atomic_write_json(dest / "vlir_export.json", summary)
    return summary
