"""``vlir export --format sharegpt``, read back the way LLaMA-Factory reads it: the dataset_info
entry (formatting, columns, tags), roles alternating user/assistant, one ``<image>`` per image in
order (its Qwen2-VL plugin counts placeholders over every message), image files relative to the
dataset_dir; and the assistant text is vlir's own chat rendering, each crop right after its call."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from vlir.cli import main
from vlir.corpus.shards import Corpus
from vlir.formats.sharegpt import PLACEHOLDER, ShareGPTExportError, export_sharegpt
from vlir.geometry import PixelBudget
from vlir.models.chat import ChatConfig, assistant_segments, assistant_text
from vlir.records import Crop


def read_like_llamafactory(dest):
    """LLaMA-Factory's loading steps for a sharegpt dataset with images, written out: the entry,
    the role tags, odd/even positions, the placeholder count, the paths under dataset_dir."""
    info = json.loads((dest / "dataset_info.json").read_text())
    entry = info["vlir"]
    assert entry["formatting"] == "sharegpt"
    cols, tags = entry["columns"], entry["tags"]
    rows = json.loads((dest / entry["file_name"]).read_text())
    out = []
    for row in rows:
        messages = row[cols["messages"]]
        if messages and messages[0][tags["role_tag"]] == tags["system_tag"]:
            messages = messages[1:]
        roles = [m[tags["role_tag"]] for m in messages]
        assert roles == [tags["user_tag"], tags["assistant_tag"]] * (len(roles) // 2) and len(roles) % 2 == 0
        paths = row[cols["images"]]
        assert sum(m[tags["content_tag"]].count(PLACEHOLDER) for m in messages) == len(paths)
        opened = [Image.open(dest / p) for p in paths]
        out.append((messages, opened, row))
    return out


def test_sharegpt_export_reads_as_llamafactory_would(small_corpus, tmp_path):
    dest = tmp_path / "lf"
    assert main(["export", str(small_corpus), str(dest), "--format", "sharegpt", "--no-progress"]) == 0
    conversations = read_like_llamafactory(dest)
    records = list(Corpus(small_corpus).records("gqa", "val"))
    assert len(conversations) == len(records) == 6
    chat = ChatConfig(model_budget=PixelBudget(3136, 1605632))
    for (messages, opened, row), record in zip(conversations, records):
        assert row["id"] == record.sample.id
        user, assistant = messages[0]["content"], messages[1]["content"]
        assert user == PLACEHOLDER + record.sample.question + chat.instruction
        segments = assistant_segments(record, chat)
        assert assistant.replace(PLACEHOLDER, "") == assistant_text(segments)  # vlir's rendering
        # each crop follows the call that made it, and the files are the stored crops, in order
        parts = assistant.split(PLACEHOLDER)
        assert len(parts) == 1 + len(record.crops) and all(p.endswith("]}\n") for p in parts[:-1])
        crops = [s for s in segments if isinstance(s, Crop)]
        assert [(im.width, im.height) for im in opened[1:]] == [(c.width, c.height) for c in crops]
        assert [(dest / p).read_bytes() for p in row["images"][1:]] == [c.png for c in crops]
        assert opened[0].size == (record.sample.width, record.sample.height)


def test_sharegpt_instruction_and_qwen3_boxes(small_corpus, tmp_path):
    dest = tmp_path / "lf3"
    assert main(["export", str(small_corpus), str(dest), "--format", "sharegpt", "--no-progress",
                 "--instruction", "", "--model-family", "qwen3_vl"]) == 0
    (messages, _, _), *_ = read_like_llamafactory(dest)
    record = next(Corpus(small_corpus).records("gqa", "val"))
    assert messages[0]["content"] == PLACEHOLDER + record.sample.question
    box = json.loads(messages[1]["content"].split(PLACEHOLDER)[0].rsplit("\n\n", 1)[1])["bbox_2d"]
    assert all(0 <= v <= 1000 for v in box)  # Qwen3-VL's 0-1000 grid


def test_sharegpt_bad_input(small_corpus, taken_dest, tmp_path, capsys):
    with pytest.raises(ShareGPTExportError, match="not an empty folder"):
        export_sharegpt(small_corpus, taken_dest)
    assert main(["export", str(small_corpus), str(tmp_path / "x"), "--format", "alpaca"]) == 2
    assert "unknown format (known: vlmr3, hf, sharegpt)" in capsys.readouterr().err
