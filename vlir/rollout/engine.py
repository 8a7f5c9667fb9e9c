"""The local backend of the crop-and-zoom loop: HF transformers in this process, KV cache reused
across crops. R-GRPO's default rollouts, ``vlir infer``/``vlir eval --engine local``.

generate -> a ``{"bbox_2d": [...]}`` call closes -> :class:`vlir.rollout.policy.RoundPolicy` maps
the box and renders the crop (the rules both backends share) -> append the family's image block ids
-> continue, until ``</answer>``, EOS, the token budget or the crop budget. Conventions are the
released VLM-R3 agent's (``shared/DESIGN.md`` §6), so its checkpoint runs here.

Speed: rows (prompts x samples) run as one left-padded batch over one ``DynamicCache``. An inserted
crop forwards only the new tokens: its 3-D rope positions come from ``get_rope_index`` over the
whole (mid-padded) trajectory with every image's grid in order, and its ``rope_deltas`` replace the
row's old ones; text tokens then sit at ``attended - 1 + delta`` (``shared/STACK.md``). Rows whose
chunk is shorter than another row's inserted block are padded *inside* the chunk with masked
tokens, which ``get_rope_index`` and the attention mask both skip. ``mode="reprefill"`` re-runs the
whole prefix after every crop: the slow reference the KV path is tested against.

torch/transformers are imported lazily; the text rules (stop strings, calls, answers) live in
:mod:`vlir.protocol`, the settings and presets in :mod:`vlir.rollout.config`, the batch tensors in
:mod:`vlir.rollout.batching`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from vlir.crops import decode_png, render_crop
from vlir.records import Box, Crop
from vlir.protocol import Event, extract_answer
from vlir.rollout.config import RolloutConfig
from vlir.rollout.policy import JSON_IMAGE_SEPARATOR, RoundPolicy, Trajectory
from vlir.rollout.row import Row

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

log = logging.getLogger(__name__)


class ReplayMismatch(AssertionError):
    """Oracle replay found the engine disagreeing with the SFT rendering of a record."""


class Rollout:
    """The engine over a loaded Qwen2.5-VL ``model`` and its ``processor``.

    >>> engine = Rollout(model, processor, RolloutConfig(temperature=0.0))   # doctest: +SKIP
    >>> [t] = engine.generate([("What is on the sign?", image)])             # doctest: +SKIP
    >>> t.answer, len(t.crops), t.finish_reason                              # doctest: +SKIP
    """

    def __init__(self, model, processor, config: RolloutConfig | None = None):
        import torch

        from vlir.models import chat
        from vlir.models import model_budget, special_ids, vision_token_ids
        from vlir.models.tokens import crop_budget
        from vlir.models.registry import family_of_processor

        self.model, self.processor = model, processor
        self.config = config or RolloutConfig()
        self.chat_config = self.config.chat if self.config.chat is not None else chat.ChatConfig.for_processor(processor)
        # the crops' budget on the model's family grid (its processor takes them as they are)
        self.crop_budget = crop_budget(processor, self.config.crop_budget or self.chat_config.crop_budget)
        family = family_of_processor(processor)
        self._image_run = re.compile("(" + re.escape(family.special_tokens["image_pad"]) + ")+")
        self._image_pad = family.special_tokens["image_pad"]
        self.tokenizer = processor.tokenizer
        self.ids = special_ids(processor)
        self.suppress = torch.tensor(vision_token_ids(processor), dtype=torch.long)
        self.eos = {self.ids["im_end"], self.ids["endoftext"]}
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        self.eos.update(gen_eos if isinstance(gen_eos, list) else [] if gen_eos is None else [gen_eos])
        if self.chat_config.model_budget != model_budget(processor):
            raise ValueError("RolloutConfig.chat.model_budget differs from the processor's image budget: "
                             "bbox numbers would be mapped from the wrong space")
        self.model_budget = self.chat_config.model_budget
        self.policy = RoundPolicy(self.config, self.model_budget)
        self.settings = {**self.config.describe(), **{k: [b.min_pixels, b.max_pixels] for k, b in  # recorded by eval
                         (("model_budget", self.model_budget), ("crop_budget", self.crop_budget))}}
        self.newline = chat.encode_text(JSON_IMAGE_SEPARATOR, processor)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.stats = {"forwarded_tokens": 0, "padded_tokens": 0, "forwards": 0}
        self._crop_cache: dict[tuple, tuple] = {}  # see _crop_inputs

    # ---------------------------------------------------------------- public API
    def generate(self, prompts: list[tuple[str, "Image.Image"]], num_samples: int = 1) -> list["Trajectory"]:
        """Roll out ``num_samples`` trajectories per ``(question, original RGB image)`` prompt, all
        in one batch; returned prompt-major (prompt 0's samples first)."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if not prompts:
            return []
        rows = [self._new_row(i, q, img) for i, (q, img) in enumerate(prompts)]
        return self._run(rows, num_samples)

    def replay(self, record, image: "Image.Image") -> "Trajectory":
        """Oracle replay: force a stored record's assistant text through the engine.

        The engine decides the crops itself (parse, map, render, insert) while the record's tokens
        are teacher-forced; every inserted token must equal the SFT rendering
        (:func:`vlir.models.chat.encode_record`) at that position, else :class:`ReplayMismatch`.
        """
        from vlir.models import chat

        enc = chat.encode_record(record, image, self.processor, self.chat_config)
        ids = _as_ids(enc["input_ids"])
        row = self._new_row(0, record.sample.question, image)
        if ids[:row.prompt_length] != row.ids:
            raise ReplayMismatch("encode_prompt is not a prefix of encode_record")
        row.forced = ids[row.prompt_length:]
        [traj] = self._run([row], 1)
        stored = [c.png for c in chat.assistant_segments(record, self.chat_config, image) if isinstance(c, Crop)]
        for i, (mine, theirs) in enumerate(zip(traj.crops, stored)):
            if mine.png != theirs:
                raise ReplayMismatch(
                    f"crop {i} of {record.sample.id} differs from the stored one: the engine cuts "
                    f"{mine.box.as_list()} (the model-space box mapped back); a build must render crops "
                    "from the box as the model writes it")
        return traj

    # ---------------------------------------------------------------- building rows
    def _new_row(self, index: int, question: str, image: "Image.Image") -> Row:
        from vlir.models import chat

        image = image.convert("RGB") if image.mode != "RGB" else image
        enc = chat.encode_prompt(question, image, self.processor, self.chat_config)
        ids = _as_ids(enc["input_ids"])
        grid = enc["image_grid_thw"].reshape(-1, 3)
        return Row(prompt_index=index, image=image, ids=ids, mask=[0] * len(ids), logprobs=[0.0] * len(ids),
                   pixel_values=[enc["pixel_values"]], grids=[grid], prompt_length=len(ids))

    def _crop_inputs(self, image: "Image.Image", box: Box) -> tuple[Crop, "torch.Tensor", "torch.Tensor"]:
        """The crop of ``box`` and its processor inputs, memoised within one ``generate`` call: the
        M samples of a prompt often crop the same box, and rendering plus preprocessing is the
        costliest part of inserting a crop (same bytes and tensors as computing it again)."""
        key = (id(image), *box.as_list())
        hit = self._crop_cache.get(key)
        if hit is None:
            crop = render_crop(image, box, self.crop_budget)
            hit = self._crop_cache[key] = (crop, *self._image_inputs(decode_png(crop.png)))
        return hit

    def _image_inputs(self, image: "Image.Image") -> tuple["torch.Tensor", "torch.Tensor"]:
        from vlir.models import chat

        out = chat.image_inputs([image], self.processor)
        return out["pixel_values"], out["image_grid_thw"].reshape(-1, 3)

    # ---------------------------------------------------------------- the loop
    def _run(self, rows: list[Row], num_samples: int) -> list["Trajectory"]:
        import torch

        self._crop_cache = {}  # per call: ids of images are only stable within it
        try:
            with torch.inference_mode():
                return self._loop(rows, num_samples)
        finally:
            self._crop_cache = {}

    def _loop(self, rows: list[Row], num_samples: int) -> list["Trajectory"]:
        from vlir.rollout.batching import Batch

        batch = Batch(self.model, rows, pad_id=self.ids["pad"], image_pad_id=self.ids["image_pad"],
                      reprefill=self.config.mode == "reprefill", stats=self.stats)
        logits = batch.prefill()
        if num_samples > 1:
            logits = batch.repeat(num_samples)
        while True:
            tokens, logprobs = self._choose(batch, logits)
            for i, (row, tok, lp) in enumerate(zip(batch.rows, tokens, logprobs)):
                if self.config.keep_scores:
                    row.scores.append(logits[i].detach().float().cpu().clone())
                self._advance(row, tok, lp)
            batch.drop_finished()
            if not batch.rows:
                break
            logits = batch.step()
        return [self._trajectory(r) for r in batch.all_rows]

    def _choose(self, batch, logits: "torch.Tensor") -> tuple[list[int], list[float]]:
        """Pick each row's next token: forced in a replay, else greedy or sampled after the hook,
        vision-token suppression, temperature and top-p. Log-probs are of the raw logits / T."""
        import torch

        cfg = self.config
        logits = logits.float()
        temp = cfg.temperature if cfg.temperature > 0 else 1.0
        scaled = logits / temp if temp != 1.0 else logits
        log_norm = torch.logsumexp(scaled, dim=-1)  # log-probs of the chosen tokens only, below
        scores = logits.clone()
        if cfg.logits_processor is not None:
            scores = cfg.logits_processor(batch.left_padded_ids(), scores)
        suppress = self.suppress.to(scores.device)
        scores[:, suppress] = float("-inf")
        if cfg.logits_processor is not None:  # (the model's own logits always leave text tokens)
            dead = ~torch.isfinite(scores).any(-1)
            if bool(dead.any()):  # the hook allowed only vision tokens: fall back to the model's choice
                scores[dead] = logits[dead].index_fill(-1, suppress, float("-inf"))
        if cfg.temperature == 0:
            tokens = scores.argmax(-1)
        else:
            if cfg.temperature != 1.0:  # a full-vocabulary pass per step saved at the paper's T = 1
                scores = scores / cfg.temperature
            if cfg.top_p < 1.0:
                scores = _top_p(scores, cfg.top_p)
            probs = torch.softmax(scores, dim=-1)
            tokens = torch.multinomial(probs.cpu(), 1, generator=self.generator).squeeze(1).to(probs.device)
        chosen = tokens.tolist()
        for i, row in enumerate(batch.rows):
            if row.forced is not None:
                chosen[i] = row.forced[row.cursor]
        index = torch.tensor(chosen, device=scaled.device)[:, None]
        lps = (scaled.gather(1, index).squeeze(1) - log_norm).tolist()
        return chosen, lps

    def _advance(self, row: Row, token: int, logprob: float) -> None:
        """Append a chosen token to ``row``, run the stop rules, queue the next forward."""
        from tokenizers.decoders import DecodeStream

        row.ids.append(token)
        row.mask.append(1)
        row.logprobs.append(logprob)
        row.pending = [token]
        row.n_sampled += 1
        if row.forced is not None:
            row.cursor += 1
        if row.stream is None:
            row.stream = DecodeStream(skip_special_tokens=False)
        piece = row.stream.step(self.tokenizer.backend_tokenizer, token) or ""
        event = row.scanner.feed(piece)
        row.round_tokens += 1
        if token in self.eos:
            row.finish = "eos"
        else:
            if event is None and self.config.tokens_per_round is not None \
                    and row.round_tokens >= self.config.tokens_per_round:
                event = row.scanner.end_round()  # the released loop reads a cut round like any other
            if event is not None:
                self._on_event(row, event)
        if row.forced is not None:
            self._check_forced(row)
        else:
            self.policy.over_budget(row, row.n_sampled)

    def _on_event(self, row: Row, event: Event) -> None:
        """A round ended (:mod:`vlir.protocol`): the policy decides; a crop's block is queued."""
        if event.kind == "answer":
            return self.policy.answered(row)
        row.round_tokens = 0
        rendered = self.policy.round_ended(
            row, box=event.bbox if event.kind == "bbox" else None,
            error=event.detail if event.kind == "bad_box" else None, render=self._crop_inputs)
        if rendered is not None:
            self._insert_crop(row, event, *rendered)
        elif row.bad_calls and row.finish is None and event.kind in ("bbox", "bad_box"):
            row.scanner.reset()  # a skipped bad call: read on as if it had not been written

    def _insert_crop(self, row: Row, event: Event, crop: Crop, pixel_values, grid) -> None:
        """Queue a rendered crop's image block (and the separator after a swallowed ``]}``)."""
        from vlir.models import chat

        inserted = (self.newline if event.tail == "" else []) + chat.image_block_ids(grid[0], self.processor)
        if self.config.image_newline:
            inserted += self.newline
        row.pixel_values.append(pixel_values)
        row.grids.append(grid)
        row.ids.extend(inserted)
        row.mask.extend([0] * len(inserted))
        row.logprobs.extend([0.0] * len(inserted))
        row.pending = row.pending + inserted
        row.new_image = (pixel_values, grid)
        row.scanner.reset()
        row.stream = None

    def _check_forced(self, row: Row) -> None:
        """Replay: inserted tokens must be exactly the record's; the replay ends with its tokens."""
        assert row.forced is not None
        if row.finish in ("bad_box", "max_crops", "max_rounds") or row.bad_calls:
            raise ReplayMismatch(f"the record's crop call at assistant position {row.cursor} ended "
                                 f"the rollout ({row.finish})")
        inserted = row.pending[1:]
        if inserted:
            expect = row.forced[row.cursor:row.cursor + len(inserted)]
            if expect != inserted:
                raise ReplayMismatch(f"engine inserted {len(inserted)} tokens that differ from the "
                                     f"record's rendering at assistant position {row.cursor}")
            row.cursor += len(inserted)
        if row.finish is not None:
            row.replay_finish = row.replay_finish or row.finish
        if row.cursor >= len(row.forced):
            row.finish = row.replay_finish or "eos"
        else:
            # the record's text goes on after a stop (e.g. <|im_end|> after </answer>): keep forcing
            # it, remembering the first stop as the finish reason
            row.finish = None

    def _trajectory(self, row: Row) -> "Trajectory":
        import torch

        finish = row.finish or "max_new_tokens"
        text = self.tokenizer.decode(row.ids[row.prompt_length:], skip_special_tokens=False)
        text = self._image_run.sub(self._image_pad, text)  # one image pad per image, as the template writes it
        return Trajectory(
            prompt_index=row.prompt_index, token_ids=row.ids, action_mask=row.mask, logprobs=row.logprobs,
            pixel_values=torch.cat(row.pixel_values, dim=0), image_grid_thw=torch.cat(row.grids, dim=0),
            crops=row.crops, boxes=row.boxes, text=text, answer=extract_answer(text), finish_reason=finish,
            prompt_length=row.prompt_length, bad_calls=row.bad_calls, completion_tokens=row.n_sampled,
            scores=row.scores if self.config.keep_scores else None,
        )


def _as_ids(value) -> list[int]:
    """Token ids from a tensor ``(1, L)``/``(L,)`` or a (nested) list."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if value and isinstance(value[0], list):
        if len(value) != 1:
            raise ValueError(f"expected one sequence, got {len(value)}")
        value = value[0]
    return [int(v) for v in value]


def _top_p(scores: "torch.Tensor", top_p: float) -> "torch.Tensor":
    """Keep the smallest set of tokens whose probability reaches ``top_p`` (at least one)."""
    import torch

    sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
    cum = torch.softmax(sorted_scores, dim=-1).cumsum(-1)
    drop_sorted = cum - torch.softmax(sorted_scores, dim=-1) >= top_p
    drop = drop_sorted.scatter(1, order, drop_sorted)
    return scores.masked_fill(drop, float("-inf"))

