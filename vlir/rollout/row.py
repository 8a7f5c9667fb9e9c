"""One rollout row's state, shared by the engine's per-row rules (:mod:`vlir.rollout.engine`) and
the batch that forwards the rows together (:mod:`vlir.rollout.batching`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlir.protocol import StopScanner
from vlir.records import Box, Crop

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image


@dataclass
class Row:
    prompt_index: int
    image: "Image.Image"
    ids: list[int]
    mask: list[int]
    logprobs: list[float]
    pixel_values: list["torch.Tensor"]
    grids: list["torch.Tensor"]
    prompt_length: int
    scanner: StopScanner = field(default_factory=StopScanner)
    stream: Any = None
    crops: list[Crop] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    finish: str | None = None
    pending: list[int] = field(default_factory=list)  # tokens to forward next (1 sampled + inserted)
    new_image: tuple["torch.Tensor", "torch.Tensor"] | None = None  # (pixel_values, grid) to feed
    scores: list["torch.Tensor"] = field(default_factory=list)
    forced: list[int] | None = None  # replay: the record's assistant ids
    cursor: int = 0  # replay: next forced position
    replay_finish: str | None = None  # replay: the first stop seen while forcing went on
    n_sampled: int = 0
    rounds: int = 0  # generation rounds ended so far
    round_tokens: int = 0  # tokens sampled in the current round
    bad_calls: list[str] = field(default_factory=list)  # why each skipped call was bad
