"""An exported record, assembled the way the authors' SFT loader assembles it
(``qwen_vl_finetune/qwenvl/data/data_qwen.py``: user = image + question + instruction; assistant =
``response_list[i]`` with a newline appended when missing, then crop i), renders under the Qwen2.5-VL
chat template to vlir's own SFT sequence. It lives with the training tests for the session's tiny
processor."""

from __future__ import annotations

import json

from PIL import Image

from vlir.formats.vlmr3 import DATA_FILE, ExportConfig, export_corpus
from vlir.models import chat
from vlir.models import model_budget
from vlir.models.registry import default_family
from tests.conftest import make_output


def _authors_messages(row: dict, dest) -> list[dict]:
    user = [{"type": "image", "image": str(dest / row["image_path"])},
            {"type": "text", "text": row["question"] + chat.VLM_R3_INSTRUCTION}]
    assistant = []
    for i, part in enumerate(row["response_list"]):
        assistant.append({"type": "text", "text": part if part.endswith("\n") else part + "\n"})
        if i < len(row["img_crop_list"]):
            assistant.append({"type": "image", "image": str(dest / row["img_crop_list"][i])})
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def test_authors_loader_sees_vlirs_sft_sequence(tiny, tmp_path):
    _, processor = tiny
    out = make_output(tmp_path / "out", n=3, n_rejects=0)
    dest = tmp_path / "dest"
    export_corpus(out, dest, ExportConfig(budget=model_budget(processor)))
    from vlir.corpus.shards import Corpus

    corpus = Corpus(out)
    records = {r.sample.id: r for r in corpus.records("gqa", "val")}
    cfg = chat.ChatConfig.for_processor(processor)
    im_end = "<|im_end|>"
    for row in json.loads((dest / DATA_FILE).read_text()):
        record = records[row["id"]]
        image = corpus.image(record)
        theirs = processor.apply_chat_template(_authors_messages(row, dest), tokenize=False,
                                               add_generation_prompt=False)
        segments = chat.assistant_segments(record, cfg)
        ours = chat.prompt_text(record.sample.question, processor, cfg) + "".join(
            s if isinstance(s, str) else default_family().image_block for s in segments)
        # their loader appends "\n" to the last part; the template closes the turn with <|im_end|>\n
        assert theirs == ours + "\n" + im_end + "\n"
        # token for token: their processor call on that text and vlir's encode_record agree on
        # everything before the last text segment; that segment they tokenize with the newline
        # their loader appends (``</answer>\n`` can merge into other tokens), then <|im_end|>\n
        crops = [Image.open(dest / p).convert("RGB") for p in row["img_crop_list"]]
        their_ids = processor(text=[theirs], images=[image, *crops], return_tensors="pt")["input_ids"][0].tolist()
        our_ids = chat.encode_record(record, image, processor, cfg)["input_ids"].tolist()
        last = chat.encode_text(segments[-1], processor)
        k = len(our_ids) - 1 - len(last)
        assert our_ids[k:] == last + [processor.tokenizer.convert_tokens_to_ids(im_end)]
        assert their_ids[:k] == our_ids[:k]
        assert their_ids[k:] == chat.encode_text(segments[-1] + "\n" + im_end + "\n", processor)
