"""``make train-served``'s runner (:mod:`vlir.train.grpo_served`) without vLLM: the output folder is
claimed by the trainer's own rule before the server's log goes into it (it used to be refused as
"not empty ... no run.json" on a fresh folder), and where the server listens is not part of the
run's identity (a restarted server gets another port; the run still resumes)."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import pytest

from tests.train.test_resume_identity import _manifest
from vlir.train import common


@pytest.fixture
def model_dir(tmp_path, monkeypatch) -> Path:
    """A trainer's save (no video processor config yet); adding it writes into the folder, as
    :func:`vlir.serving.tiny.add_video_processor` does with the vLLM environment."""
    from tests.test_identity import _checkpoint
    from vlir.serving import tiny

    def add_video_processor(model, python=None):
        (Path(model) / "video_preprocessor_config.json").write_text("{}")

    monkeypatch.setattr(tiny, "add_video_processor", add_video_processor)
    return _checkpoint(tmp_path / "model")


class FakeServer:
    """Writes its log where the runner says and listens on a new port each start."""

    ports = iter(range(41000, 41100))

    def __init__(self, model, python=None, dev_mode=False, log_path=None):
        self.log_path, self.port = Path(log_path), next(self.ports)
        self.base_url, self.served_name = f"http://127.0.0.1:{self.port}/v1", str(model)

    def __enter__(self):
        self.log_path.write_text("INFO: Started server process\n")
        return self

    def __exit__(self, *exc):
        return False


def test_the_runner_claims_its_folder_then_serves_and_trains(tmp_path, model_dir, monkeypatch):
    from vlir.serving import vllm_env
    from vlir.train import grpo, grpo_served
    from vlir.train.grpo_config import GRPOConfig

    runs = []

    def run(cfg):  # the trainer's setup claims the folder (the server's log is already in it)
        runs.append((common.claim_output(cfg, rank=0), cfg.rollout))
        (Path(cfg.output_dir) / "checkpoints").mkdir(exist_ok=True)
        (Path(cfg.output_dir) / "checkpoints" / "latest").write_text("step-1")
        return Path(cfg.output_dir)

    monkeypatch.setattr(vllm_env, "VLLMServer", FakeServer)
    monkeypatch.setattr(grpo, "run", run)
    cfg = GRPOConfig(model_path=str(model_dir), data_dir=str(_manifest(tmp_path / "rl", 4)),
                     output_dir=str(tmp_path / "grpo_served"), rollout={"max_new_tokens": 8})
    out = grpo_served.run_served(cfg)  # the model folder gains its video config before the claim
    assert (out / "vllm_server.log").is_file() and runs[0][0] is False  # fresh
    assert runs[0][1]["engine"] == "served" and runs[0][1]["base_url"] == ["http://127.0.0.1:41000/v1"]
    grpo_served.run_served(cfg)  # the same run, its server on another port: it resumes
    assert runs[1][0] is True and runs[1][1]["base_url"] == ["http://127.0.0.1:41001/v1"]
    other = dataclasses.replace(cfg, rollout={"max_new_tokens": 16})
    with pytest.raises(common.RunRefused, match="max_new_tokens"):  # another run: refused before any server starts
        grpo_served.run_served(other)
    assert len(runs) == 2


def test_the_runner_refuses_in_one_line(tmp_path, model_dir, capsys):
    from vlir.train import grpo_served

    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("someone else's")
    code = grpo_served.main([f"model_path={model_dir}", f"data_dir={_manifest(tmp_path / 'rl', 4)}",
                             f"output_dir={out}"])
    err = capsys.readouterr().err
    assert code == 2 and "no run.json" in err and "Traceback" not in err
