"""A training output_dir holds one run (issue 23, failure 10): a rerun after ``kill -9`` continues
from the last complete checkpoint by default (``resume=auto``) with one history in metrics.jsonl;
``resume=false`` refuses a non-empty folder; another run is refused naming what differs; an SFT
corpus with 0 accepted records is one line before any model loads, leaving nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlir.train import common

REPO = Path(__file__).resolve().parents[2]


def _manifest(folder: Path, accepted: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"splits": {"gqa/train": {
        "source": "gqa", "split": "train", "accepted": accepted, "rejected": 5}}}))
    return folder


def test_check_corpus_refuses_zero_accepted_records_and_unmatched_splits(tmp_path):
    with pytest.raises(common.RunRefused, match=r"0 accepted records in \['gqa/train'\] \(5 rejected"):
        common.check_corpus(_manifest(tmp_path / "c", 0), ["*/train"])
    with pytest.raises(common.RunRefused, match="match nothing"):
        common.check_corpus(_manifest(tmp_path / "d", 3), ["vsr/*"])
    with pytest.raises(common.RunRefused, match="no manifest.json"):
        common.check_corpus(tmp_path / "nothing", ["*"])
    common.check_corpus(_manifest(tmp_path / "e", 3), ["*/train"])  # something to train on


@pytest.mark.subprocess
def test_sft_on_zero_accepted_records_is_one_line_and_leaves_nothing(tmp_path):
    corpus, out = _manifest(tmp_path / "corpus", 0), tmp_path / "sft"
    r = subprocess.run([sys.executable, "-m", "vlir.train.sft", f"data_dir={corpus}", f"output_dir={out}",
                        f"model_path={tmp_path / 'never-built'}", "build_model=tiny"],
                       capture_output=True, text=True, timeout=600, cwd=REPO, env=_fresh_process_group_env())
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("python -m vlir.train.sft: error:")]
    assert len(lines) == 1 and "0 accepted records" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not out.exists() and not (tmp_path / "never-built").exists()


def _fresh_process_group_env() -> dict[str, str]:
    """This environment less the process-group variables an earlier in-process trainer test set
    (its MASTER_PORT is still bound by this process's group)."""
    import os

    return {k: v for k, v in os.environ.items()
            if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}


def _cfg(out: Path, model: Path, data: Path, **kw):
    from vlir.train.sft_config import SFTConfig

    return SFTConfig(model_path=str(model), data_dir=str(data), output_dir=str(out), **kw)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """Enough of a checkpoint for the identity (config and weights files are hashed, not loaded)."""
    from tests.test_identity import _checkpoint

    return _checkpoint(tmp_path / "model")


def _claim(cfg):
    return common.claim_output(cfg, rank=0)


def test_auto_resumes_the_same_run_and_refuses_another(tmp_path, model_dir):
    data, out = _manifest(tmp_path / "data", 4), tmp_path / "out"
    assert _claim(_cfg(out, model_dir, data)) is False  # new folder: fresh
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "latest").write_text("step-3")
    assert _claim(_cfg(out, model_dir, data, save_steps=1, keep_checkpoints=5)) is True  # not identity
    with pytest.raises(common.RunRefused) as exc:
        _claim(_cfg(out, model_dir, data, learning_rate=1.0))
    assert "config.learning_rate" in str(exc.value) and "resume=true" in str(exc.value)
    # resume=true continues with the new settings, but never on other data or another base model
    assert _claim(_cfg(out, model_dir, data, learning_rate=1.0, resume=True)) is True
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\1\1\1\1")  # other (whole) weights
    with pytest.raises(common.RunRefused, match="model: "):
        _claim(_cfg(out, model_dir, data, learning_rate=1.0, resume=True))


def test_resume_false_refuses_a_non_empty_folder_and_true_needs_a_checkpoint(tmp_path, model_dir):
    data, out = _manifest(tmp_path / "data", 4), tmp_path / "out"
    with pytest.raises(common.RunRefused, match="holds no checkpoint"):
        _claim(_cfg(out, model_dir, data, resume=True))
    assert _claim(_cfg(out, model_dir, data, resume=False)) is False
    with pytest.raises(common.RunRefused, match="not empty and resume=false"):
        _claim(_cfg(out, model_dir, data, resume=False))


def test_a_rerun_before_the_first_checkpoint_starts_over_with_one_history(tmp_path, model_dir):
    data, out = _manifest(tmp_path / "data", 4), tmp_path / "out"
    _claim(_cfg(out, model_dir, data))
    (out / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')  # killed before any save
    assert _claim(_cfg(out, model_dir, data)) is False
    assert not (out / "metrics.jsonl").exists()


def test_a_foreign_folder_is_refused(tmp_path, model_dir):
    data, out = _manifest(tmp_path / "data", 4), tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(common.RunRefused, match="no run.json"):
        _claim(_cfg(out, model_dir, data))


def test_metrics_are_cut_at_the_checkpoint_and_at_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4}\n{"step": 5, "lo')
    assert common._rows_up_to(path, 3) == ['{"step": 1}', '{"step": 2}', '{"step": 3}']
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 1}\n')
    assert common._rows_up_to(path, 9) == ['{"step": 1}']


def test_resume_setting_accepts_auto_true_false_only():
    from vlir.train.sft_config import SFTConfig

    assert SFTConfig().resume == "auto"
    assert SFTConfig.load(None, ["resume=true"]).resume is True
    with pytest.raises(ValueError, match="resume must be one of"):
        SFTConfig.load(None, ["resume=maybe"])


@pytest.mark.deepspeed
@pytest.mark.train
def test_rerun_after_a_kill_continues_from_the_checkpoint_with_one_history(tmp_path, tiny_model_dir, make_record):
    """save_steps=3, killed at step 5 (no final save), rerun with the defaults: it resumes at step
    3 (it used to start again at 1 and append: steps 1-5 then 1-8) and logs each step once."""
    pytest.importorskip("deepspeed")
    from tests.train.test_sft import STEPS, make_cfg, write_corpus
    from vlir.train.sft import SFTTrainer

    corpus = write_corpus(tmp_path / "corpus", make_record, {"synth/train": 12})
    out = tmp_path / "out"
    first = SFTTrainer(make_cfg(out, tiny_model_dir, corpus, save_steps=3))
    first.setup()
    first.train(until_step=5)
    first.cleanup()  # the kill: no save after step 3
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]
    again = SFTTrainer(make_cfg(out, tiny_model_dir, corpus, save_steps=3))  # resume=auto
    again.setup()
    assert again.resuming and again.step == 3
    again.train()
    again.save_checkpoint()
    again.cleanup()
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == list(range(1, STEPS + 1))


@pytest.mark.subprocess
def test_vlir_train_sft_refuses_another_run_in_one_line(tmp_path, model_dir):
    data, out = _manifest(tmp_path / "data", 4), tmp_path / "out"
    common.claim_output(_cfg(out, model_dir, data), rank=0)
    r = subprocess.run([sys.executable, "-m", "vlir", "train", "sft", f"model_path={model_dir}", f"data_dir={data}",
                        f"output_dir={out}", "learning_rate=0.5"], capture_output=True, text=True, timeout=600, cwd=REPO,
                       env=_fresh_process_group_env())
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("vlir: error:")]
    assert len(lines) == 1 and "holds another training run (config.learning_rate: " in lines[0], r.stderr
