"""Give a tiny checkpoint the full Qwen2.5-VL processor vLLM loads (image AND video processor).

Run by the vLLM environment's python, never imported by vlir (it must not import vlir: the two
environments share nothing but files)::

    .venv-vllm/bin/python vlir/serving/vllm_processor.py DIR

vLLM builds a Qwen2.5-VL model's multimodal processor with ``AutoProcessor`` and refuses a folder
without a video processor ("Can't load video processor"); vlir's environment cannot build one
(transformers' video processors need torchvision, which does not load beside the CPU torch). Here
torchvision loads, so this script reads DIR's tokenizer and image budget, builds
``Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(...), video_processor=
Qwen2VLVideoProcessor(...))`` and saves it into a scratch folder, then copies only the processor
config files into DIR: the tokenizer and chat template vlir wrote stay byte for byte.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

# what the processor's save writes besides the tokenizer files (names differ across transformers 5.x)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json")


def main(folder: str) -> None:
    from transformers import (AutoTokenizer, Qwen2_5_VLProcessor, Qwen2VLImageProcessor,
                              Qwen2VLVideoProcessor)

    path = Path(folder)
    config = json.loads((path / "processor_config.json").read_text("utf-8"))["image_processor"]
    size = dict(config["size"])
    common = dict(patch_size=config["patch_size"], merge_size=config["merge_size"],
                  temporal_patch_size=config["temporal_patch_size"])
    image = Qwen2VLImageProcessor(min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"], **common)
    video = Qwen2VLVideoProcessor(**common)
    tokenizer = AutoTokenizer.from_pretrained(path)
    template = (path / "chat_template.jinja").read_text("utf-8")
    processor = Qwen2_5_VLProcessor(image_processor=image, tokenizer=tokenizer, video_processor=video,
                                    chat_template=template)
    with tempfile.TemporaryDirectory() as scratch:
        processor.save_pretrained(scratch)
        written = [name for name in PROCESSOR_FILES if (Path(scratch) / name).exists()]
        if "processor_config.json" not in written and "preprocessor_config.json" not in written:
            raise SystemExit(f"the processor saved none of {PROCESSOR_FILES} in {scratch}")
        for name in written:
            shutil.copyfile(Path(scratch) / name, path / name)
    print(json.dumps({"folder": str(path), "wrote": written}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: vllm_processor.py CHECKPOINT_DIR")
    main(sys.argv[1])
