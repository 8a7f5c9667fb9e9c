"""The R-GRPO loss and its mask: inserted crop tokens never reach the loss or its gradient, and a
trajectory without crops trains exactly like plain GRPO."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from vlir.train.grpo_loss import (action_logprobs, collate, group_advantages, keep_offset,  # noqa: E402
                                  policy_loss, sequence_logprobs)

V, D = 23, 8
IMAGE_PAD = 7


def _setup(seed: int = 0):
    """Two trajectories: prompt (mask 0), sampled text, an inserted image block (mask 0), more
    sampled text, then right padding on the shorter one."""
    g = torch.Generator().manual_seed(seed)
    masks = [[0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1],
             [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0]]
    lengths = [14, 11]
    ids = torch.randint(8, V, (2, 14), generator=g)
    mask = torch.tensor(masks)
    hidden = torch.randn(2, 14, D, generator=g, dtype=torch.float64)
    head = torch.randn(D, V, generator=g, dtype=torch.float64, requires_grad=True)
    old = torch.randn(2, 14, generator=g, dtype=torch.float64) * 0.3 - 3.0
    ref = torch.randn(2, 14, generator=g, dtype=torch.float64) * 0.3 - 3.0
    adv = torch.tensor([1.3, -0.7], dtype=torch.float64)
    return SimpleNamespace(ids=ids, mask=mask, hidden=hidden, head=head, old=old, ref=ref, adv=adv,
                           lengths=lengths)


def _loss_and_grads(s, hidden, ids, **kw):
    hidden = hidden.clone().requires_grad_(True)
    s.head.grad = None
    logits = hidden @ s.head
    logp = action_logprobs(logits, ids, s.mask)
    loss, stats = policy_loss(logp, s.old, s.adv, s.mask,
                              ref_logprobs=s.ref, **kw)
    loss.backward()
    return loss.detach(), s.head.grad.clone(), hidden.grad.clone(), stats


@pytest.mark.parametrize("beta,loss_type", [(0.0, "grpo"), (0.04, "grpo"), (0.04, "dapo")])
def test_inserted_positions_and_tokens_cannot_change_loss_or_gradients(beta, loss_type):
    s = _setup()
    base = _loss_and_grads(s, s.hidden, s.ids, beta=beta, loss_type=loss_type)
    assert torch.isfinite(base[0]) and base[0].abs() > 0
    assert base[3].clip_fraction > 0  # the old log-probs differ enough for clipping to happen

    # positions whose next token was inserted (image pads, vision start/end) or is padding
    inserted_next = torch.zeros_like(s.mask, dtype=torch.bool)
    inserted_next[:, :-1] = s.mask[:, 1:] == 0
    wild = s.hidden.clone()
    wild[inserted_next] = torch.randn(int(inserted_next.sum()), D, dtype=torch.float64) * 1e3
    # ... and the inserted token ids themselves (e.g. a different image's pad tokens)
    swapped = s.ids.clone()
    swapped[s.mask == 0] = IMAGE_PAD

    for hidden, ids in ((wild, s.ids), (s.hidden, swapped), (wild, swapped)):
        loss, head_grad, hidden_grad, _ = _loss_and_grads(s, hidden, ids, beta=beta, loss_type=loss_type)
        assert torch.equal(loss, base[0])
        assert torch.allclose(head_grad, base[1], rtol=0, atol=1e-12)
        assert torch.equal(hidden_grad[~inserted_next], base[2][~inserted_next])
        assert not hidden_grad[inserted_next].any()

    # control: the same perturbation at a position that predicts a sampled token does matter
    live = s.hidden.clone()
    live[0, 4] += 1.0
    assert not torch.equal(_loss_and_grads(s, live, s.ids, beta=beta, loss_type=loss_type)[0], base[0])


def _plain_grpo(logits, ids, prompt_len, completion_mask, old, adv, eps_low=0.2, eps_high=0.28):
    """Plain GRPO as TRL writes it: one prompt block, one completion block, completion logits at
    ``prompt_len - 1 : -1``."""
    logits = logits[:, prompt_len - 1:-1]
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)
    ratio = torch.exp(logp - old)
    per_token = -torch.min(ratio * adv[:, None], ratio.clamp(1 - eps_low, 1 + eps_high) * adv[:, None])
    return ((per_token * completion_mask).sum(1) / completion_mask.sum(1)).mean()


def test_a_trajectory_without_crops_trains_like_plain_grpo():
    g = torch.Generator().manual_seed(1)
    prompt_len, comp = 5, 7
    ids = torch.randint(0, V, (3, prompt_len + comp), generator=g)
    completion_mask = torch.ones(3, comp, dtype=torch.float64)
    completion_mask[2, 4:] = 0  # a shorter completion, right-padded
    action = torch.cat([torch.zeros(3, prompt_len, dtype=torch.long), completion_mask.long()], dim=1)
    old_c = torch.randn(3, comp, generator=g, dtype=torch.float64) * 0.2 - 3.0
    adv = torch.tensor([0.9, -1.1, 0.4], dtype=torch.float64)
    logits = torch.randn(3, prompt_len + comp, V, generator=g, dtype=torch.float64)

    a = logits.clone().requires_grad_(True)
    ours, stats = policy_loss(action_logprobs(a, ids, action),
                              torch.cat([torch.zeros(3, prompt_len, dtype=torch.float64), old_c], 1), adv, action)
    ours.backward()
    b = logits.clone().requires_grad_(True)
    plain = _plain_grpo(b, ids, prompt_len, completion_mask, old_c, adv)
    plain.backward()
    assert torch.allclose(ours, plain, atol=1e-12)
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    assert stats.tokens == int(completion_mask.sum())

    # with old = current (one update per batch, the paper's setting) the gradient is the plain
    # policy gradient  -A * mean_t grad log p(t)
    c = logits.clone().requires_grad_(True)
    logp = action_logprobs(c, ids, action)
    loss, stats = policy_loss(logp, logp.detach(), adv, action)
    loss.backward()
    d = logits.clone().requires_grad_(True)
    logp_d = action_logprobs(d, ids, action)
    pg = -(adv[:, None] * logp_d).sum(1) / action.sum(1)
    pg.mean().backward()
    assert torch.allclose(c.grad, d.grad, atol=1e-12) and stats.clip_fraction == 0.0


def test_group_advantages():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    adv = group_advantages(r, 4)
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std()
    assert torch.allclose(adv[:4], (torch.tensor([1.0, 0.0, 0.0, 1.0]) - 0.5) / (std + 1e-4))
    assert torch.equal(adv[4:], torch.zeros(4))  # equal rewards: no signal
    assert torch.allclose(group_advantages(r, 4, scale=False)[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]))
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(r, 3)


def test_policy_loss_rejects_unknown_type_and_survives_empty_rows():
    mask = torch.tensor([[0, 0, 0], [0, 1, 1]])
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    loss, stats = policy_loss(logp, logp.detach(), torch.tensor([1.0, 1.0]), mask)
    assert torch.isfinite(loss) and stats.tokens == 2
    with pytest.raises(ValueError, match="loss_type"):
        policy_loss(logp, logp, torch.ones(2), mask, loss_type="ppo")


def _traj(ids, mask, pixels=None, grids=None):
    return SimpleNamespace(token_ids=ids, action_mask=mask, pixel_values=pixels, image_grid_thw=grids)


def test_collate_pads_right_and_marks_image_tokens():
    px = torch.ones(4, 6)
    grid = torch.tensor([[1, 2, 2]])
    batch = collate([_traj([1, 2, IMAGE_PAD, 3], [0, 0, 0, 1], px, grid), _traj([1, 4], [0, 1])],
                    pad_id=0, image_pad_id=IMAGE_PAD)
    assert batch.input_ids.tolist() == [[1, 2, IMAGE_PAD, 3], [1, 4, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.mm_token_type_ids.tolist() == [[0, 0, 1, 0], [0, 0, 0, 0]]
    assert batch.pixel_values.shape == (4, 6) and batch.image_grid_thw.tolist() == [[1, 2, 2]]
    assert keep_offset(batch) == 0
    with pytest.raises(ValueError, match="mask entries"):
        collate([_traj([1, 2], [0])], 0, IMAGE_PAD)


def test_sequence_logprobs_on_the_tiny_model_match_a_full_forward(tiny, make_record):
    """Keeping only the logits after the prompt (the original image's pads) changes nothing."""
    from vlir.models import chat
    from vlir.models import special_ids

    model, processor = tiny
    record, image = make_record(1)
    enc = chat.encode_record(record, image, processor)
    ids = enc["input_ids"].reshape(-1).tolist()
    labels = enc["labels"].reshape(-1).tolist()
    mask = [0] + [int(lab != -100) for lab in labels[1:]]
    traj = _traj(ids, mask, enc["pixel_values"], enc["image_grid_thw"].reshape(-1, 3))
    sid = special_ids(processor)
    batch = collate([traj], sid["pad"], sid["image_pad"])
    assert keep_offset(batch) > 30  # the prompt's logits are skipped
    with torch.no_grad():
        ours = sequence_logprobs(model, batch)
        full = model(input_ids=batch.input_ids[:1], attention_mask=batch.attention_mask[:1],
                     pixel_values=traj.pixel_values, image_grid_thw=traj.image_grid_thw,
                     mm_token_type_ids=batch.mm_token_type_ids[:1]).logits
    want = torch.log_softmax(full[0, :-1].float(), -1).gather(-1, batch.input_ids[0, 1:, None]).squeeze(-1)
    m = batch.action_mask[0, 1:].bool()
    assert m.sum() > 10
    assert torch.allclose(ours[0, 1:][m], want[m], atol=1e-5)
    assert not ours[0, 1:][~m].any()


def test_entropy_and_clip_low_high_are_token_means_over_action_tokens():
    s = _setup()
    logits = s.hidden @ s.head.detach()
    logp, ent = action_logprobs(logits, s.ids, s.mask, entropy=True)
    assert torch.equal(logp, action_logprobs(logits, s.ids, s.mask))  # same log-probs either way
    m = s.mask.bool()
    probs = torch.softmax(logits, dim=-1)
    manual = -(probs * probs.log()).sum(-1)  # entropy of the distribution that predicts token t+1
    want = torch.zeros_like(ent)
    want[:, 1:] = manual[:, :-1]
    assert torch.allclose(ent[m], want[m]) and bool((ent[~m] == 0).all())

    # ratio far above 1 + eps_high on the positive-advantage row, far below 1 - eps_low on the other
    old = torch.where(torch.tensor([[True], [False]]), logp - 1.0, logp + 1.0)
    _, stats = policy_loss(logp, old, torch.tensor([1.0, -1.0], dtype=torch.float64), s.mask)
    tokens = m.sum(1).double()
    assert stats.clip_high == pytest.approx(float(tokens[0] / tokens.sum()))
    assert stats.clip_low == pytest.approx(float(tokens[1] / tokens.sum()))
    assert stats.clip_fraction == pytest.approx(1.0)
    _, flipped = policy_loss(logp, old, torch.tensor([-1.0, 1.0], dtype=torch.float64), s.mask)
    assert flipped.clip_fraction == 0.0  # clipping only binds where it limits the update


def test_logprob_gap_is_over_action_tokens_of_trajectories_with_sampler_logprobs():
    from types import SimpleNamespace

    from vlir.train.grpo_loss import logprob_gap

    trainer = torch.tensor([[0.0, -1.0, -2.0, 0.0], [0.0, -1.0, 0.0, 0.0]])
    mask = torch.tensor([[0, 1, 1, 0], [0, 1, 0, 0]])
    trajs = [SimpleNamespace(token_ids=[5, 6, 7], logprobs=[0.0, -1.5, -2.0]),  # gap 0.5 + 0 (pad not read)
             SimpleNamespace(token_ids=[5, 6], logprobs=[])]  # no sampler log-probs: left out
    assert logprob_gap(trajs, trainer, mask) == (0.5, 2.0)
    assert logprob_gap(trajs[1:], trainer[1:], mask[1:]) == (0.0, 0.0)


def test_a_batch_without_action_tokens_gives_a_zero_loss_that_backpropagates():
    """Every trajectory of a micro-batch can lose its action tokens (served ones that re-tokenized
    are never trained on): the loss is zero, and DeepSpeed's backward still has a graph."""
    from vlir.train.grpo_loss import action_logprobs

    logits = torch.randn(2, 4, 7, requires_grad=True)
    ids, mask = torch.randint(0, 7, (2, 4)), torch.zeros(2, 4, dtype=torch.long)
    logp, ent = action_logprobs(logits, ids, mask, entropy=True)
    assert not logp.any() and not ent.any()
    loss, stats = policy_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), mask)
    loss.backward()
    assert float(loss.detach()) == 0.0 and stats.tokens == 0 and not logits.grad.any()


def test_an_excluded_trajectory_is_one_pad_token_without_images_in_a_batch_that_still_forwards(tiny, make_record):
    """A served trajectory whose image tokens do not match its images (the server counted 392 where
    the images make 396) would make the model refuse the whole batch: excluded, it keeps its row
    and adds nothing."""
    import copy

    from vlir.models import chat, special_ids
    from vlir.train.grpo_loss import exclude_from_training

    model, processor = tiny
    record, image = make_record(1)
    enc = chat.encode_record(record, image, processor)
    ids = enc["input_ids"].reshape(-1).tolist()
    mask = [0] + [int(lab != -100) for lab in enc["labels"].reshape(-1).tolist()[1:]]
    good = _traj(ids, mask, enc["pixel_values"], enc["image_grid_thw"].reshape(-1, 3))
    sid = special_ids(processor)
    bad = copy.copy(good)
    bad.token_ids = [t for t in ids if t != sid["image_pad"]][:5] + ids[-10:]  # too few image tokens
    bad.action_mask = [0] * len(bad.token_ids)
    with pytest.raises(ValueError, match="do not match"):
        with torch.no_grad():
            sequence_logprobs(model, collate([good, bad], sid["pad"], sid["image_pad"]))
    bad.logprobs = [0.0] * len(bad.token_ids)
    exclude_from_training(bad, sid["pad"])
    assert bad.token_ids == [sid["pad"]] and bad.action_mask == [0] and bad.logprobs == []
    batch = collate([good, bad], sid["pad"], sid["image_pad"])
    with torch.no_grad():
        logp = sequence_logprobs(model, batch)
    assert batch.action_mask[1].sum() == 0 and not logp[1].any() and logp[0].any()
