"""A checkpoint carries what it was trained with (:mod:`vlir.rollout.trained`), and ``vlir infer``
uses it without being told: a model trained with ``chat: {instruction: ""}`` (the zoom recipes) is
asked without the VLM-R3 instruction, as it learned; ``--instruction`` and ``--agent`` override."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")

from tests.conftest import make_image  # noqa: E402
from tests.rollout_helpers import tiny_dir  # noqa: E402
from vlir.cli import main  # noqa: E402
from vlir.models.chat import VLM_R3_INSTRUCTION, ChatConfig  # noqa: E402
from vlir.rollout import RolloutConfig, trained  # noqa: E402

SCRIPT = ['<think> look\n\n{"bbox_2d": [30, 20, 150, 130]}\n', ' red </think>\n<answer>red</answer>']


@pytest.fixture
def engines(monkeypatch):
    """Make the random model write a call and an answer; keep every engine the CLI builds."""
    from vlir import rollout
    from vlir.testing.scripted import ScriptedLogits

    built = []
    real_init = rollout.Rollout.__init__

    def init(self, model, processor, config=None):
        config.logits_processor = ScriptedLogits(processor, SCRIPT, image_newline=config.image_newline)
        real_init(self, model, processor, config)
        built.append(self)

    monkeypatch.setattr(rollout.Rollout, "__init__", init)
    return built


@pytest.fixture
def checkpoint(tmp_path):
    """The tiny checkpoint as the zoom recipes save it: trained with no instruction, 2 crops, 64 tokens."""
    folder = tmp_path / "grpo"
    shutil.copytree(tiny_dir(), folder)
    trained.write(folder, ChatConfig(instruction=""), preset="vlir",
                  rollout=RolloutConfig(max_new_tokens=64, max_crops=2, temperature=1.0).describe(), trainer="GRPO")
    return folder


def _prompt_text(engine, question, image) -> str:
    row = engine._new_row(0, question, image)
    return engine.tokenizer.decode(row.ids)


def test_infer_asks_as_the_checkpoint_was_trained(tmp_path, checkpoint, engines):
    image = tmp_path / "p.png"
    make_image().save(image)
    out = tmp_path / "out"
    assert main(["infer", "--model", str(checkpoint), "--image", str(image), "--question", "What color?",
                 "--out", str(out)]) == 0
    agent = json.loads((out / "trajectory.json").read_text())["agent"]
    assert agent["instruction"] == "" and agent["max_crops"] == 2 and agent["max_new_tokens"] == 64
    assert agent["temperature"] == 0.0  # sampling stays infer's (greedy), not the training rollouts'
    prompt = _prompt_text(engines[-1], "What color?", make_image())
    assert prompt.rstrip().endswith("What color?<|im_end|>\n<|im_start|>assistant")
    assert VLM_R3_INSTRUCTION.strip()[:40] not in prompt
    # flags override the checkpoint: the instruction, and a preset for the released checkpoint
    assert main(["infer", "--model", str(checkpoint), "--image", str(image), "--question", "What color?",
                 "--out", str(out), "--instruction", " Answer briefly.", "--max-crops", "3"]) == 0
    agent = json.loads((out / "trajectory.json").read_text())["agent"]
    assert agent["instruction"] == " Answer briefly." and agent["max_crops"] == 3
    assert "What color? Answer briefly.<|im_end|>" in _prompt_text(engines[-1], "What color?", make_image())
    assert main(["infer", "--model", str(checkpoint), "--image", str(image), "--question", "q", "--out", str(out),
                 "--agent", "vlmr3", "--max-new-tokens", "80", "--min-pixels", "3136", "--max-pixels", "200704"]) == 0
    agent = json.loads((out / "trajectory.json").read_text())["agent"]
    assert agent["preset"] == "vlmr3" and agent["max_crops"] == 8 and agent["max_rounds"] == 8


def test_a_folder_without_the_file_gets_the_defaults(tmp_path, engines):
    image = tmp_path / "p.png"
    make_image().save(image)
    out = tmp_path / "out"
    assert trained.read(tiny_dir()) == {}
    assert main(["infer", "--model", str(tiny_dir()), "--image", str(image), "--question", "q", "--out", str(out),
                 "--max-new-tokens", "80"]) == 0
    agent = json.loads((out / "trajectory.json").read_text())["agent"]
    assert agent["instruction"] == VLM_R3_INSTRUCTION and agent["preset"] == "vlir"


def test_a_broken_file_is_one_line(tmp_path, capsys):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_dir(), folder)
    (folder / trained.INFERENCE_FILE).write_text("{not json")
    image = tmp_path / "p.png"
    make_image().save(image)
    assert main(["infer", "--model", str(folder), "--image", str(image), "--question", "q"]) == 2
    assert trained.INFERENCE_FILE in capsys.readouterr().err


def test_the_trainers_write_it(tmp_path):
    from vlir.train import common
    from vlir.train.grpo_config import GRPOConfig

    cfg = GRPOConfig(chat={"instruction": ""}, rollout={"preset": "vlmr3", "max_crops": 2}, min_pixels=3136,
                     max_pixels=200704)
    common.save_inference_settings(tmp_path, 0, ChatConfig(instruction=""), cfg, cfg.rollout_config(), "vlmr3")
    data = trained.read(tmp_path)
    assert data["trainer"] == "GRPO" and data["image_pixels"] == [3136, 200704]
    assert trained.chat_settings(tmp_path)["instruction"] == "" and trained.preset(tmp_path) == "vlmr3"
    assert trained.loop_settings(tmp_path)["max_crops"] == 2 and trained.loop_settings(tmp_path)["max_rounds"] == 8
    common.save_inference_settings(tmp_path / "other", 1, ChatConfig(), cfg)  # only rank 0 writes
    assert not (tmp_path / "other").exists()
