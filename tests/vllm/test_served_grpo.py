"""R-GRPO with the served engine (``rollout.engine: served``) against the real vLLM server: two
optimizer steps on the zoom task's RL prompts with the tiny vLLM-ready model. Checked: the ids the
loss trains on are exactly the ids the server conditioned on and sampled (a trajectory whose ids are
not is never trained on: its action mask is empty); ``rollout/token_mismatch_rate`` and the sync
time are logged; after each step the server's weights are the policy's (its weight version is the
step and its output changes). The server gets its original weights back at the end (the other
tests of the package share it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.vllm.test_weight_sync import logprobs

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.subprocess, pytest.mark.deepspeed,
              pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]


LOGPROB_GAP = 0.1  # nats per action token; measured: see test_a_server_left_stale_shows_in_the_logprob_gap


def config(server, model, tmp_path, name):
    from vlir.train.grpo_config import GRPOConfig

    return GRPOConfig(model_path=str(model), data_dir=str(tmp_path / "zoom/rl"),
                      output_dir=str(tmp_path / name), deepspeed=str(REPO / "recipes/deepspeed/zero2.json"),
                      precision="fp32", num_generations=2, prompts_per_step=2, per_device_batch_size=4,
                      max_steps=2, learning_rate=1e-2, lr_scheduler="constant", seed=0, plot=False,
                      chat={"instruction": ""},  # random text of random length: rewards differ within a group
                      rewards=[{"name": "length", "weight": 1.0, "kwargs": {"saturation_chars": 1000}}],
                      rollout={"engine": "served", "base_url": [server.base_url], "max_new_tokens": 12,
                               "served_model": str(server.served_name)})


@pytest.fixture(scope="module")
def zoom_rl(tmp_path_factory):
    """make train's path on the zoom task: the sample tree, `vlir build`, `vlir rl-data` from val."""
    from vlir.corpus.build import BuildConfig, Job
    from vlir.corpus.executors.local import run_build
    from vlir.sources.samples.zoom import write_zoom_tree
    from vlir.train.rl_data import build_rl_set

    base = tmp_path_factory.mktemp("served-grpo")
    write_zoom_tree(base / "tree", {"val": 8}, seed=0)
    run_build(BuildConfig(), [Job("zoom", "val", str(base / "tree"))], base / "vlir", show_progress=False)
    build_rl_set(base / "vlir", base / "zoom/rl", {"zoom": 8}, seed=0, split="val")
    return base


def test_two_served_rgrpo_steps_are_token_exact_and_sync_the_server(vllm_server, tiny_vllm_dir, zoom_rl,
                                                                     monkeypatch):
    from vlir.rollout import served
    from vlir.serving import weights
    from vlir.train import grpo

    tmp_path = zoom_rl
    sampled, trained = [], []
    real_create, real_collate = served._Endpoints.create, grpo.collate

    def create(self, **kwargs):  # what the server conditioned on and sampled, per request
        response = real_create(self, **kwargs)
        data = response.model_dump()
        sampled.append((data["prompt_token_ids"], data["choices"][0]["token_ids"]))
        return response

    def collate(trajs, *args):  # what the loss trains on
        batch = real_collate(trajs, *args)
        trained.extend((list(t.token_ids), list(t.action_mask), t.requests, t.token_exact) for t in trajs)
        return batch

    monkeypatch.setattr(served._Endpoints, "create", create)
    monkeypatch.setattr(grpo, "collate", collate)
    before = logprobs(vllm_server)
    cfg = config(vllm_server, tiny_vllm_dir, tmp_path, "grpo")
    try:
        out = grpo.run(cfg)
        assert weights.weight_version(vllm_server.base_url) == "2"
        after = logprobs(vllm_server)
    finally:
        weights.load_weights(vllm_server.base_url, tiny_vllm_dir, version="0")
    assert after != before  # the server samples from the trained policy
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["advantages/max_abs"] > 0 for r in rows)
    assert all("rollout/token_mismatch_rate" in r and r["timing_s/sync"] > 0 for r in rows)
    assert all(r["rollout/stale_rate"] == 0.0 for r in rows)
    # the server's log-probs of what it sampled are the trainer's on the same ids (bf16 vs fp32)
    assert all(r["rollout/logprob_gap"] < LOGPROB_GAP for r in rows)
    # every trained trajectory: one request per round; a one-round one is the server's ids exactly
    single = {tuple(p + s) for p, s in sampled}
    one_round = [t for t in trained if t[2] == 1 and t[3]]
    assert one_round and all(tuple(ids) in single and sum(mask) == len(ids) - len(next(
        p for p, s in sampled if p + s == ids)) for ids, mask, _, _ in one_round)
    assert all(sum(mask) == 0 for ids, mask, _, exact in trained if not exact)
    assert len(trained) == 8  # one micro-batch of 2 prompts x 2 samples per step
    for k, row in enumerate(rows):
        step = trained[4 * k:4 * k + 4]
        assert row["rollout/token_mismatch_rate"] == pytest.approx(sum(not t[3] for t in step) / 4)
    mismatch = sum(not t[3] for t in trained) / len(trained)
    print(f"served R-GRPO: {len(trained)} trajectories trained, token mismatch rate {mismatch:.2f}, "
          f"sync {[round(r['timing_s/sync'], 2) for r in rows]} s")


def test_a_server_left_stale_shows_in_the_logprob_gap(vllm_server, tiny_vllm_dir, zoom_rl, monkeypatch):
    """The same two steps with the weight sync's reload skipped: the second step's rollouts come
    from the weights before the first step, and ``rollout/logprob_gap`` says so (a sync that misses
    a layer, as vLLM's CPU reload misses a tied head, shows the same way)."""
    from vlir.serving import weights
    from vlir.train import grpo

    monkeypatch.setattr(weights, "load_weights", lambda *a, **k: None)
    out = grpo.run(config(vllm_server, tiny_vllm_dir, zoom_rl, "stale"))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    gaps = [r["rollout/logprob_gap"] for r in rows]
    print(f"served R-GRPO without the reload: logprob gap per step {gaps}")
    assert gaps[0] < LOGPROB_GAP <= gaps[1]
