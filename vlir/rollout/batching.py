"""Tensor side of the rollout engine: the batch of live rows, its KV cache and its rope positions.

Kept apart from :mod:`vlir.rollout.engine` (the per-row loop rules) because this is where the silent
failure modes of Qwen2.5-VL's 3-D rope live (``shared/STACK.md``):

* every forward passes explicit ``position_ids`` (3, B, T): without them the model would read stale
  ``rope_deltas`` and give an inserted image 1-D positions, with no error;
* a forward that carries a new image passes only that image's ``pixel_values``/``image_grid_thw``,
  while its positions come from ``get_rope_index`` over the whole trajectory and *all* grids;
* text tokens after that sit at ``attended tokens - 1 + delta``, ``delta`` from the latest
  ``get_rope_index``.

Rows advance in lock-step. A forward appends one chunk of T columns to every live row; a row with
fewer new tokens than T (it only decodes while another inserts a crop) is padded at the start of
its chunk with masked tokens, so every row's last column is real and ``logits[:, -1]`` is each
row's next-token distribution. Masked columns are skipped by the attention mask and by
``get_rope_index``, so they change nothing. Finished rows leave the batch (and the cache).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vlir.rollout.row import Row


class Batch:
    """The live rows of one engine run with their cache, ids, mask and rope deltas.

    Given what it needs: the model, the rows, the pad and ``<|image_pad|>`` ids, whether a crop
    re-runs the whole prefix (``reprefill``, the slow reference) and a ``stats`` dict whose
    ``forwarded_tokens``/``padded_tokens``/``forwards`` counters it increments."""

    def __init__(self, model, rows: list["Row"], *, pad_id: int, image_pad_id: int, reprefill: bool = False,
                 stats: dict[str, int] | None = None):
        self.model = model
        self.rows = list(rows)  # live rows, in cache order
        self.all_rows = list(rows)  # every row, in output order
        self.pad = pad_id
        self.image_pad = image_pad_id
        self.reprefill = reprefill
        self.stats = stats if stats is not None else {"forwarded_tokens": 0, "padded_tokens": 0, "forwards": 0}
        self.device = next(self.model.parameters()).device
        self.dtype = next(self.model.parameters()).dtype
        self.cache = None
        self.seq: "torch.Tensor | None" = None  # (B, L) ids, pads included
        self.attn: "torch.Tensor | None" = None  # (B, L) 1 = real token
        self.delta: "torch.Tensor | None" = None  # (B, 1) mrope deltas

    # ------------------------------------------------------------------ forwards
    def prefill(self) -> "torch.Tensor":
        """Forward the left-padded prompts with their images; returns last-position logits."""
        import torch

        length = max(len(r.ids) for r in self.rows)
        self.seq = torch.full((len(self.rows), length), self.pad, dtype=torch.long, device=self.device)
        self.attn = torch.zeros_like(self.seq)
        for i, row in enumerate(self.rows):
            n = len(row.ids)
            self.seq[i, length - n:] = torch.tensor(row.ids, device=self.device)
            self.attn[i, length - n:] = 1
        pixel_values = torch.cat([pv for r in self.rows for pv in r.pixel_values])
        grids = torch.cat([g for r in self.rows for g in r.grids])
        return self._forward_full(pixel_values, grids)

    def repeat(self, times: int) -> "torch.Tensor":
        """Turn each prefilled prompt row into ``times`` sample rows (the prompt is forwarded once)."""
        rows = []
        for row in self.rows:
            for _ in range(times):
                rows.append(dataclasses.replace(
                    row, ids=list(row.ids), mask=list(row.mask), logprobs=list(row.logprobs),
                    pixel_values=list(row.pixel_values), grids=list(row.grids),
                    scanner=type(row.scanner)(), crops=[], boxes=[], bad_calls=[], scores=[]))
        self.rows = self.all_rows = rows
        self.cache.batch_repeat_interleave(times)
        self.seq = self.seq.repeat_interleave(times, dim=0)
        self.attn = self.attn.repeat_interleave(times, dim=0)
        self.delta = self.delta.repeat_interleave(times, dim=0)
        return self._last_logits.repeat_interleave(times, dim=0)

    def step(self) -> "torch.Tensor":
        """Forward every live row's pending tokens (a sampled token, plus a crop's image block for
        rows that just closed a crop call); returns last-position logits."""
        import torch

        rows = self.rows
        width = max(len(r.pending) for r in rows)
        # one tensor per forward, built from Python lists (a tensor per row costs more than the
        # tiny model's decode step on CPU)
        chunk = torch.tensor([[self.pad] * (width - len(r.pending)) + r.pending for r in rows],
                             dtype=torch.long, device=self.device)
        chunk_attn = torch.tensor([[0] * (width - len(r.pending)) + [1] * len(r.pending) for r in rows],
                                  dtype=torch.long, device=self.device)
        past = self.seq.shape[1]
        self.seq = torch.cat([self.seq, chunk], dim=1)
        self.attn = torch.cat([self.attn, chunk_attn], dim=1)
        new_images = [r.new_image for r in rows if r.new_image is not None]
        for row in rows:
            row.pending, row.new_image = [], None
        if not new_images:
            positions = (self.attn.sum(-1, keepdim=True) - 1 + self.delta).unsqueeze(0).expand(3, -1, -1)
            return self._forward(chunk, positions, chunk_attn)
        if self.reprefill:
            pixel_values = torch.cat([pv for r in rows for pv in r.pixel_values])
            grids = torch.cat([g for r in rows for g in r.grids])
            return self._forward_full(pixel_values, grids)
        positions = self._rope()
        return self._forward(chunk, positions[..., past:], chunk_attn,
                             pixel_values=torch.cat([pv for pv, _ in new_images]),
                             image_grid_thw=torch.cat([g for _, g in new_images]))

    def _forward_full(self, pixel_values, grids) -> "torch.Tensor":
        """Forward the whole sequence into a fresh cache (prefill, and reprefill after a crop)."""
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.model.config)
        positions = self._rope()
        return self._forward(self.seq, positions, self.attn, pixel_values=pixel_values, image_grid_thw=grids)

    def _rope(self) -> "torch.Tensor":
        """3-D positions of the whole trajectory (all rows' images, row by row, in order); refreshes
        the rows' deltas."""
        import torch

        grids = torch.cat([g for r in self.rows for g in r.grids]).to(self.device)
        positions, delta = self.model.model.get_rope_index(
            self.seq, (self.seq == self.image_pad).int(), image_grid_thw=grids, attention_mask=self.attn)
        self.delta = delta.to(self.device)
        return positions

    def _forward(self, ids, positions, chunk_attn, pixel_values=None, image_grid_thw=None) -> "torch.Tensor":
        kwargs = {}
        if pixel_values is not None:
            kwargs = {"pixel_values": pixel_values.to(self.device, self.dtype),
                      "image_grid_thw": image_grid_thw.to(self.device)}
        out = self.model(input_ids=ids, attention_mask=self.attn, position_ids=positions, cache=self.cache,
                         use_cache=True, logits_to_keep=1, **kwargs)
        self.cache = out.cache
        stats = self.stats
        real = int(chunk_attn.sum())
        stats["forwarded_tokens"] += real
        stats["padded_tokens"] += int(chunk_attn.numel()) - real
        stats["forwards"] += 1
        self._last_logits = out.logits[:, -1]
        return self._last_logits

    # ------------------------------------------------------------------ bookkeeping
    def drop_finished(self) -> None:
        """Remove finished rows from the batch and the cache."""
        import torch

        keep = [i for i, r in enumerate(self.rows) if r.finish is None]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            return
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.seq, self.attn, self.delta = self.seq[index], self.attn[index], self.delta[index]

    def left_padded_ids(self) -> "torch.Tensor":
        """Each live row's trajectory so far, left-padded: what a ``logits_processor`` hook sees."""
        import torch

        # the batch's own (mid-padded) ids with each row's real tokens moved right, in order: the
        # same tensor as left-padding every row's id list, without rebuilding it from Python lists
        # at every step (the hook is called once per sampled token)
        real, order = torch.sort(self.attn, dim=1, stable=True)
        ids = torch.where(real.bool(), self.seq.gather(1, order), self.pad)
        return ids[:, ids.shape[1] - int(real.sum(1).max()):]
