"""Scripted policies for the rollout engine: make any model (a random tiny one) write given text.

R-GRPO tests, the engine's own tests and ``bench/rollout.py`` need trajectories with real crop
calls from a model that has learnt nothing. :class:`ScriptedLogits` is a ``logits_processor`` hook
(:attr:`vlir.rollout.RolloutConfig.logits_processor`) that forces chosen text segment by segment,
reading each row's position from the ids alone (rows leave the batch as they finish, so the hook
cannot rely on row order). Beyond its script a row is left to the model.
"""

from __future__ import annotations

from typing import Any, Sequence


class ScriptedLogits:
    """Force ``segments[0]`` right after the prompt and ``segments[k]`` right after the k-th
    inserted image, e.g. ``['<think> look {"bbox_2d": [0, 0, 56, 56]}', ' </think>
    <answer>red</answer>']``. ``by_question`` maps a substring of a prompt's question to that
    prompt's own segments (rows of other prompts use ``segments``), so rows of one batch can crop at
    different steps. Forced tokens keep their logit (so log-probs stay the model's).
    ``image_newline``: the engine writes ``"\\n"`` after each crop image
    (:attr:`vlir.rollout.config.RolloutConfig.image_newline`); segments start after it."""

    def __init__(self, processor: Any, segments: Sequence[str] = (),
                 by_question: dict[str, Sequence[str]] | None = None, image_newline: bool = False):
        from vlir.models import special_ids

        self.tokenizer = processor.tokenizer
        ids = special_ids(processor)
        self.pad, self.im_start, self.vision_end = ids["pad"], ids["im_start"], ids["vision_end"]
        self.header = len(self._encode("assistant\n"))
        self.default = [self._encode(s) for s in segments]
        self.by_question = {q: [self._encode(s) for s in segs] for q, segs in (by_question or {}).items()}
        self._scripts: dict[tuple[int, ...], list[list[int]]] = {}
        self.skip = len(self._encode("\n")) if image_newline else 0

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _script(self, prompt: list[int]) -> list[list[int]]:
        key = tuple(t for t in prompt if t != self.pad)
        if key not in self._scripts:
            text = self.tokenizer.decode(list(key))
            self._scripts[key] = next((s for q, s in self.by_question.items() if q in text), self.default)
        return self._scripts[key]

    def __call__(self, input_ids, scores):
        import torch

        index = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        # the assistant turn starts after the last <|im_start|> and its "assistant\n" header
        start = torch.where(input_ids == self.im_start, index, -1).max(1).values + 1 + self.header
        after = (input_ids == self.vision_end) & (index >= start[:, None])
        images = after.sum(1).tolist()
        last_end = torch.where(after, index, -1).max(1).values
        segment_start = torch.where(last_end >= 0, last_end + 1 + self.skip, start).tolist()
        length = input_ids.shape[1]
        for i, (k, seg) in enumerate(zip(images, segment_start)):
            script = self._script(input_ids[i, :start[i]].tolist()) if self.by_question else self.default
            pos = length - seg
            if k < len(script) and pos < len(script[k]):
                forced = script[k][pos]
                keep = scores[i, forced].clone()
                scores[i] = float("-inf")
                scores[i, forced] = keep if bool(keep.isfinite()) else 0.0
        return scores
