"""One local rollout row's state, shared by the engine's per-row rules (:mod:`vlir.rollout.engine`)
and the batch that forwards the rows together (:mod:`vlir.rollout.batching`); the round state the
policy reads (image, crops, boxes, bad calls, rounds, finish) is :class:`~vlir.rollout.policy.RoundState`'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlir.protocol import StopScanner
from vlir.rollout.policy import RoundState

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(kw_only=True)
class Row(RoundState):
    prompt_index: int
    ids: list[int]
    mask: list[int]
    logprobs: list[float]
    pixel_values: list["torch.Tensor"]
    grids: list["torch.Tensor"]
    prompt_length: int
    scanner: StopScanner = field(default_factory=StopScanner)
    stream: Any = None
    pending: list[int] = field(default_factory=list)  # tokens to forward next (1 sampled + inserted)
    new_image: tuple["torch.Tensor", "torch.Tensor"] | None = None  # (pixel_values, grid) to feed
    scores: list["torch.Tensor"] = field(default_factory=list)
    forced: list[int] | None = None  # replay: the record's assistant ids
    cursor: int = 0  # replay: next forced position
    replay_finish: str | None = None  # replay: the first stop seen while forcing went on
    n_sampled: int = 0
    round_tokens: int = 0  # tokens sampled in the current round
