"""The R-GRPO objective on tensors: batching trajectories, per-token log-probs, advantages, and
the clipped policy-ratio loss over action-mask tokens only.

The mask is the point of region-conditioned GRPO: a trajectory interleaves text the policy sampled
with crop images (and their ``<|vision_start|>``/``<|image_pad|>``/``<|vision_end|>`` tokens) that
the rollout engine inserted. The policy gradient must flow only through sampled tokens. Here that is
structural, not a multiplication by zero: log-probs are gathered only at positions whose *next*
token has ``action_mask == 1`` (:func:`action_logprobs`), masked positions take the old log-prob
(ratio 1, no gradient) before any ``exp``, so logits at inserted positions — however large — and the
ids of inserted tokens cannot reach the loss or its gradient. A trajectory without crops has
``action_mask`` = 1 on exactly its completion, and the loss is plain GRPO.

TRL pieces used: ``selective_log_softmax`` (memory-lean log_softmax+gather). TRL's loss itself is a
method of its trainer (``GRPOTrainer._compute_loss``), bound to its batch layout (one prompt block,
one completion block): it cannot express masks with holes, so the loss is written here, following
the released VLM-R3 code (two-sided clip 0.2/0.28, per-sequence token mean, then batch mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from trl.trainer.utils import selective_log_softmax

from vlir.train.grpo_config import LOSS_TYPES  # the config owns the choices


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4,
                     scale: bool = True) -> torch.Tensor:
    """``(r - mean) / (std + eps)`` within each group of ``group_size`` consecutive rewards (the
    M samples of one prompt); ``scale=False`` keeps only the centring (Dr. GRPO). The std is the
    unbiased one, as in the released code; a group of equal rewards gets zero advantages."""
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    grouped = rewards.float().view(-1, group_size)
    centred = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(centred[:, :1])
        centred = centred / (std + eps)
    return centred.reshape(-1)


@dataclass
class Batch:
    """Right-padded trajectories, ready for one forward pass (all tensors on one device)."""

    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    action_mask: torch.Tensor  # (B, L) 1 = sampled by the policy
    mm_token_type_ids: torch.Tensor  # (B, L) 1 at <|image_pad|>: Qwen2.5-VL's 3-D rope needs it
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None

    def to(self, device: Any) -> "Batch":
        move = (lambda t: None if t is None else t.to(device))
        return Batch(*(move(getattr(self, f)) for f in self.__dataclass_fields__))


def collate(trajectories: Sequence[Any], pad_id: int, image_pad_id: int) -> Batch:
    """Pad trajectories (``token_ids``, ``action_mask``, ``pixel_values``, ``image_grid_thw``, as
    the rollout engine returns them) into a :class:`Batch`; images are concatenated in order."""
    length = max(len(t.token_ids) for t in trajectories)
    ids = torch.full((len(trajectories), length), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    action = torch.zeros_like(ids)
    for i, t in enumerate(trajectories):
        n = len(t.token_ids)
        if len(t.action_mask) != n:
            raise ValueError(f"trajectory {i}: {len(t.action_mask)} mask entries for {n} tokens")
        ids[i, :n] = torch.as_tensor(t.token_ids, dtype=torch.long)
        attn[i, :n] = 1
        action[i, :n] = torch.as_tensor(t.action_mask, dtype=torch.long)
    pixels = [t.pixel_values for t in trajectories if t.pixel_values is not None and t.pixel_values.numel()]
    grids = [t.image_grid_thw for t in trajectories if t.image_grid_thw is not None and t.image_grid_thw.numel()]
    return Batch(ids, attn, action, (ids == image_pad_id).long() * attn,
                 torch.cat(pixels) if pixels else None, torch.cat(grids) if grids else None)


def exclude_from_training(trajectory: Any, pad_id: int) -> None:
    """Make a trajectory that must not be trained on (a served one whose ids are not exactly what
    the server conditioned on and sampled) one pad token without images and without action tokens.

    It keeps its place in the batch (its group's advantages are computed with its reward) but adds
    nothing to the loss. Its own ids cannot go into the forward: where the server counted another
    number of image tokens than its images make, the model refuses the batch ("Image features and
    image tokens do not match")."""
    trajectory.token_ids, trajectory.action_mask, trajectory.logprobs = [pad_id], [0], []
    trajectory.pixel_values = trajectory.image_grid_thw = None


def action_logprobs(logits: torch.Tensor, input_ids: torch.Tensor, action_mask: torch.Tensor,
                    offset: int = 0, temperature: float = 1.0,
                    entropy: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``(B, L)`` log-prob of each action token given its prefix, 0.0 elsewhere.

    ``logits`` are the model's outputs for positions ``offset .. L-1`` (``logits_to_keep``); the
    log-prob of token ``t`` is read from the logits at ``t - 1``. Only rows at positions predicting
    an action token are gathered, so nothing else in ``logits`` can influence the result. With
    ``entropy=True`` also the ``(B, L)`` entropy (nats, no gradient) of the sampling distribution
    ``softmax(logits / temperature)`` at each action token (what TRL logs as ``entropy``).
    """
    if offset > 0 and bool(action_mask[:, 1:offset + 1].any()):
        raise ValueError("an action token precedes the kept logits: lower logits_to_keep's offset")
    target = action_mask[:, 1:].bool().clone()  # target[b, p] <=> token p+1 is an action token
    target[:, :offset] = False
    b_idx, p_idx = target.nonzero(as_tuple=True)
    rows = logits[b_idx, p_idx - offset]  # (N, V)
    if rows.shape[0]:
        picked = selective_log_softmax(rows, input_ids[b_idx, p_idx + 1], temperature=temperature)
    else:  # nothing to train on (e.g. every served trajectory re-tokenized): zeros, still on the graph
        picked = rows.sum(-1)
    out = torch.zeros(input_ids.shape, dtype=picked.dtype, device=picked.device)
    out = out.index_put((b_idx, p_idx + 1), picked)
    if not entropy:
        return out
    with torch.no_grad():
        logp_all = torch.log_softmax(rows.float() / temperature, dim=-1)
        ent = -(logp_all.exp() * logp_all).sum(dim=-1)
    return out, torch.zeros_like(out).index_put((b_idx, p_idx + 1), ent.to(out.dtype))


def logprob_gap(trajectories: Sequence[Any], logprobs: torch.Tensor, action_mask: torch.Tensor) -> tuple[float, float]:
    """Summed ``|sampler log-prob - trainer log-prob|`` over the action tokens of the trajectories
    that carry their sampler's log-probs (``Trajectory.logprobs``, one per id), and the token count.

    The trainer's are recomputed on the same ids with the weights that sampled them, so the mean
    gap is numerical noise for the local engine (~1e-6) and bf16-vs-fp32 noise for a served one
    (measured 2e-4 to 1.3e-3 after SFT; 0.36 with a skipped reload): a larger one says the sampler did not hold the policy (a weight sync that missed a
    layer), what TRL logs as ``sampling/sampling_logp_difference``."""
    gap, tokens = 0.0, 0.0
    for i, t in enumerate(trajectories):
        n = len(t.token_ids)
        if len(t.logprobs) != n:
            continue
        mask = action_mask[i, :n].bool()
        if bool(mask.any()):
            sampler = torch.as_tensor(t.logprobs, dtype=torch.float32, device=logprobs.device)
            gap += float((logprobs[i, :n].detach().float() - sampler)[mask].abs().sum())
            tokens += float(mask.sum())
    return gap, tokens


def keep_offset(batch: Batch) -> int:
    """First position whose logits are needed: one before the earliest action token of the batch.
    Prompt logits (the original image's hundreds of pad tokens) are never materialised."""
    first = batch.action_mask.float().argmax(dim=1)  # 0 for rows without action tokens
    has = batch.action_mask.any(dim=1)
    if not bool(has.any()):
        return batch.input_ids.shape[1] - 1
    return max(0, int(first[has].min()) - 1)


def sequence_logprobs(model: Any, batch: Batch, temperature: float = 1.0,
                      entropy: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Forward a :class:`Batch` through a Qwen2.5-VL (or a DeepSpeed engine around one) and return
    the ``(B, L)`` action-token log-probs (and their entropies with ``entropy=True``). Positions
    (3-D mrope) are computed by the model over the whole trajectory from ``mm_token_type_ids`` and
    ``image_grid_thw``, as in generation."""
    offset = keep_offset(batch)
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                pixel_values=batch.pixel_values, image_grid_thw=batch.image_grid_thw,
                mm_token_type_ids=batch.mm_token_type_ids, use_cache=False,
                logits_to_keep=batch.input_ids.shape[1] - offset)
    return action_logprobs(out.logits.float(), batch.input_ids, batch.action_mask, offset, temperature, entropy)


@dataclass
class LossStats:
    """Token means over the action tokens: ``clip_low`` = ratio below ``1 - eps_low`` with a
    negative advantage, ``clip_high`` = above ``1 + eps_high`` with a positive one (TRL's
    ``clip_ratio/low_mean`` and ``high_mean``); ``clip_fraction`` is their sum."""

    clip_fraction: float
    kl: float | None
    tokens: int
    clip_low: float = 0.0
    clip_high: float = 0.0


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                action_mask: torch.Tensor, eps_low: float = 0.2, eps_high: float = 0.28,
                ref_logprobs: torch.Tensor | None = None, beta: float = 0.0,
                loss_type: str = "grpo") -> tuple[torch.Tensor, LossStats]:
    """The clipped policy-ratio loss over action tokens.

    ``-min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A)`` per action token, plus
    ``beta * KL(pi || ref)`` (the k3 estimator) when ``beta > 0``; ``loss_type="grpo"`` averages
    over each trajectory's action tokens, then over trajectories (the released code);
    ``"dapo"`` averages over all action tokens of the batch. ``old_logprobs`` are constants.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    mask = action_mask.bool()
    old = old_logprobs.detach()
    logprobs = torch.where(mask, logprobs, old)  # inserted positions: ratio 1, no gradient path
    ratio = torch.exp(logprobs - old)
    adv = advantages.detach().to(ratio.dtype)[:, None]
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * adv
    per_token = -torch.min(unclipped, clipped)
    kl_value = None
    if ref_logprobs is not None:
        ref = torch.where(mask, ref_logprobs.detach(), logprobs.detach())
        per_token_kl = torch.exp(ref - logprobs) - (ref - logprobs) - 1
        if beta > 0:
            per_token = per_token + beta * per_token_kl
        kl_value = float((per_token_kl.detach() * mask).sum() / mask.sum().clamp(min=1))
    per_token = per_token.masked_fill(~mask, 0.0)
    counts = mask.sum(dim=1)
    if loss_type == "grpo":
        loss = (per_token.sum(dim=1) / counts.clamp(min=1)).mean()
    else:
        loss = per_token.sum() / counts.sum().clamp(min=1)
    tokens = mask.sum().clamp(min=1)
    low = float((((ratio < 1 - eps_low) & (adv < 0)) & mask).sum() / tokens)
    high = float((((ratio > 1 + eps_high) & (adv > 0)) & mask).sum() / tokens)
    return loss, LossStats(low + high, kl_value, int(mask.sum()), low, high)
