"""R-GRPO learns, and this test can tell when it does not.

A short version of ``make train``, on its data path: the zoom task's tree
(:mod:`vlir.sources.samples.zoom`), built into a corpus by ``vlir build``'s engine (grounded chains,
checks, shards, manifest), the RL set sampled from its val split as ``vlir rl-data`` does, an SFT
warm start of the tiny model with ``recipes/sft_tiny.yaml``, then R-GRPO with the real rollout
engine, the recipe's real rewards and the real trainer (``recipes/grpo_tiny.yaml``, fewer steps).
(``make train``'s corpus also holds the five sample sources' ~40 train chains; here the corpus is
the zoom task alone.) The check: the mean reward of the last quarter of the steps exceeds the
first quarter's by at least ``MARGIN``.

The same check is then run with the algorithm broken from outside the trainer and must fail:
``sign_flip`` negates the advantages (the policy is pushed away from what pays).

Margin, measured on this machine (SFT warm start of 400 steps on 600 zoom chains; R-GRPO ``STEPS``
= 24 steps of 8 of 128 val prompts x 5 samples at lr 1e-3; reward = accuracy + 0.5 format + 0.5
region + 0.1 length, at most 2.1; figure = mean reward of the last 6 steps minus the first 6),
R-GRPO seeds 0-4 (``vlir build`` path, measured 2026-12-04):

==============  =======  =======  =======  =======  =======
run             seed 0   seed 1   seed 2   seed 3   seed 4
==============  =======  =======  =======  =======  =======
intact          +0.309   +0.183   +0.035   +0.016   +0.038
sign_flip       -0.593   -0.651   -0.874   -0.709   -0.740
==============  =======  =======  =======  =======  =======

The SFT policy already reads the colour from its crops (accuracy ~0.65 at step 1, 0.8 with a crop
and 0 without one), so 24 steps add less than on the old ``python -m vlir.sources.zoom`` data path,
whose table (intact +0.068..+0.238, sign_flip -0.71..-0.88) this one replaces.
``MARGIN`` = 0.01 lies below every intact seed (min +0.016) and far above every sign-flipped one
(max -0.59); the test runs seed 0 (+0.309 intact). The ``mask_dropped`` mutant (the action mask
replaced by "every token after the prompt", so the inserted crop tokens are trained on) was not
caught by a reward check over 24 steps on every seed on the old data path (it collapsed the reward
on seed 0 but climbed like the intact run on seeds 1-4; not re-measured here), because the inserted
tokens are a few of ~45 per trajectory and their gradient is small next to the sampled text's (our
reading, not measured). That bug is caught where it can be caught deterministically:
``tests/train/test_grpo_loss.py`` proves the loss and gradients ignore inserted positions and fail
without the mask. The mutant stays available here (``mutant("mask_dropped")``) for measuring.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

REPO = Path(__file__).resolve().parents[2]
STEPS = 24
MARGIN = 0.01
SEED = 0
RL_PROMPTS = 128


@pytest.fixture(scope="module")
def zoom_sft(tmp_path_factory, tiny_model_dir):
    """``make train``'s data path on the zoom task alone, from the session's tiny model."""
    return zoom_sft_warm_start(tmp_path_factory.mktemp("zoom"), tiny_model_dir, RL_PROMPTS)


def zoom_sft_warm_start(out: Path, model_dir: Path, rl_prompts: int, sft_overrides: tuple[str, ...] = ()) -> Path:
    """The sample zoom tree (600 train chains, ``rl_prompts`` val questions), ``vlir build``'s engine
    into ``out/vlir``, ``vlir rl-data`` from its val split into ``out/rl`` and the SFT warm start of
    ``model_dir`` with recipes/sft_tiny.yaml (and ``sft_overrides``) into ``out/sft``."""
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.sources.samples.zoom import write_zoom_tree
    from vlir.train.rl_data import build_rl_set
    from vlir.train.sft import run as run_sft
    from vlir.train.sft_config import SFTConfig

    write_zoom_tree(out / "tree", {"train": 600, "val": rl_prompts}, seed=0)
    run_build(BuildConfig(), [Job("zoom", split, str(out / "tree")) for split in ("train", "val")],
              out / "vlir", show_progress=False)
    build_rl_set(out / "vlir", out / "rl", {"zoom": rl_prompts}, seed=0, split="val")
    cfg = SFTConfig.load(REPO / "recipes/sft_tiny.yaml", [
        f"model_path={model_dir}", f"data_dir={out / 'vlir'}", f"output_dir={out / 'sft'}",
        f"deepspeed={REPO / 'recipes/deepspeed/zero2.json'}", "plot=false", *sft_overrides])
    with one_thread():
        run_sft(cfg)
    return out


@contextlib.contextmanager
def one_thread():
    """The tiny model gains nothing from threads; on a shared CPU they only wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rl_rows(base: Path, name: str, seed: int = SEED, steps: int = STEPS) -> list[dict]:
    """One R-GRPO run of make train's recipe from the SFT warm start; returns metrics.jsonl's rows."""
    from vlir.train.grpo import METRICS, run
    from vlir.train.grpo_config import GRPOConfig
    from vlir.train.plots import read_metrics

    cfg = GRPOConfig.load(REPO / "recipes/grpo_tiny.yaml", [
        f"model_path={base / 'sft'}", f"data_dir={base / 'rl'}", f"output_dir={base / name}",
        f"deepspeed={REPO / 'recipes/deepspeed/zero2.json'}", f"max_steps={steps}", f"seed={seed}",
        "plot=false"])
    with one_thread():
        out = run(cfg)
    return read_metrics(out / METRICS)


def rise(rows: list[dict]) -> float:
    from vlir.train.grpo_metrics import summary

    return summary(rows, keys=("reward",))["reward"]["change"]


@contextlib.contextmanager
def mutant(kind: str):
    """Break the algorithm from outside the trainer (the names the trainer module looks up)."""
    import vlir.train.grpo as grpo

    mp = pytest.MonkeyPatch()
    if kind == "sign_flip":
        orig = grpo.group_advantages
        mp.setattr(grpo, "group_advantages", lambda *a, **k: -orig(*a, **k))
    elif kind == "mask_dropped":
        orig_collate = grpo.collate

        def collate_all(trajs, pad_id, image_pad_id):
            batch = orig_collate(trajs, pad_id, image_pad_id)
            for i, t in enumerate(trajs):
                batch.action_mask[i, t.prompt_length:len(t.token_ids)] = 1
            return batch

        mp.setattr(grpo, "collate", collate_all)
    elif kind != "none":
        raise ValueError(kind)
    try:
        yield
    finally:
        mp.undo()


@pytest.mark.slow
@pytest.mark.timeout(900)  # build + SFT + two 24-step runs: ~3 min idle, ~10 on a shared, loaded CPU
def test_rgrpo_reward_rises_and_the_check_fails_for_broken_algorithms(zoom_sft):
    intact = rise(rl_rows(zoom_sft, "intact"))
    broken = {}
    for kind in ("sign_flip",):
        with mutant(kind):
            broken[kind] = rise(rl_rows(zoom_sft, kind))
    assert intact >= MARGIN, f"R-GRPO reward rose by {intact:.3f} < {MARGIN} (mutants: {broken})"
    for kind, value in broken.items():
        assert value < MARGIN, f"the learning check passed with {kind} ({value:.3f} >= {MARGIN}): it cannot fail"


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the SFT warm start (400 steps) alone takes minutes on a shared CPU
def test_the_readme_infer_example_answers_on_the_trained_checkpoint(zoom_sft, tmp_path):
    """``vlir infer --model out/train/... --image ... --question ...`` as the README writes it (no
    --instruction): the checkpoint's vlir_inference.json says it was trained with ``chat:
    {instruction: ""}``, so infer asks without the VLM-R3 instruction, and the answers are the
    task's. Asked with the instruction it never saw (the old behaviour), it answers worse."""
    import json

    from vlir.cli import main
    from vlir.models.chat import VLM_R3_INSTRUCTION
    from vlir.rollout import trained
    from vlir.train.rl_data import RLSet

    model = zoom_sft / "sft"
    assert trained.chat_settings(model)["instruction"] == ""
    prompts = [RLSet(zoom_sft / "rl")[i] for i in range(PROMPTS)]

    def correct(*flags: str) -> int:
        right = 0
        for i, p in enumerate(prompts):
            p.image.save(tmp_path / f"{i}.png")
            out = tmp_path / f"out{i}"
            with one_thread():
                assert main(["infer", "--model", str(model), "--image", str(tmp_path / f"{i}.png"),
                             "--question", p.question, "--out", str(out), *flags]) == 0
            info = json.loads((out / "trajectory.json").read_text())
            right += str(info["answer"]).strip().lower() in [a.lower() for a in p.answers]
        return right

    as_trained, with_instruction = correct(), correct("--instruction", VLM_R3_INSTRUCTION)
    print(f"README infer example: {as_trained}/{PROMPTS} correct as trained, {with_instruction}/{PROMPTS} "
          "with the VLM-R3 instruction")
    assert as_trained >= MIN_CORRECT and as_trained > with_instruction


PROMPTS = 8
MIN_CORRECT = 6  # measured on the seed-0 SFT warm start: 8/8 as trained, 0/8 with the VLM-R3 instruction
