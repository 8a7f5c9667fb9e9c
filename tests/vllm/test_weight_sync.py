"""Weight sync into the running server (:mod:`vlir.serving.weights`): a trainer's checkpoint
(the tiny model after a perturbation "step") goes in between a pause and a resume, the served
model's answers and weight version follow it, and loading the original back restores the
server's weights exactly (vLLM's own per-parameter checksums)."""

from __future__ import annotations

import shutil

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.subprocess, pytest.mark.timeout(900)]  # the shared server starts in ~70-200 s


def logprobs(server) -> list[float]:
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key="EMPTY")
    out = client.completions.create(model=str(server.served_name), prompt="What is the color of the car?",
                                    max_tokens=3, temperature=0, logprobs=1).model_dump()
    return out["choices"][0]["logprobs"]["token_logprobs"]


def test_weight_update_round_trip(vllm_server, tiny_vllm_dir, tmp_path):
    import torch

    from vlir.serving import weights
    from vlir.models import load_model

    model, _ = load_model(tiny_vllm_dir)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param, generator=torch.Generator().manual_seed(param.numel())))
    step = tmp_path / "step-1"
    shutil.copytree(tiny_vllm_dir, step)
    model.save_pretrained(step)

    baseline, before = weights.checksums(vllm_server.base_url), logprobs(vllm_server)
    weights.load_weights(vllm_server.base_url, step, version="step-1")
    changed = weights.checksums(vllm_server.base_url)
    assert weights.weight_version(vllm_server.base_url) == "step-1"
    # on CPU vLLM's checksums see norms, embeddings and biases change, not the repacked linear layers
    assert changed.keys() == baseline.keys() and changed != baseline
    assert logprobs(vllm_server) != before
    weights.load_weights(vllm_server.base_url, tiny_vllm_dir, version="step-0")
    assert weights.checksums(vllm_server.base_url) == baseline
    assert logprobs(vllm_server) == before
