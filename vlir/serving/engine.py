"""The crop-and-zoom loop against a served model: ``vlir infer/eval --engine openai``.

The same loop as :class:`vlir.rollout.Rollout` (generate until a :mod:`vlir.protocol` stop string,
read the call, map the box with :mod:`vlir.geometry`, render the crop with
:func:`vlir.crops.render_crop`, insert it, continue), run over chat completions of any
OpenAI-compatible server that can *continue* an assistant turn holding images: vLLM's
``continue_final_message: true, add_generation_prompt: false`` (the released agent runs the same
loop on vLLM's offline API, ``src/model/r3_vllm.py``). Each round is one request whose last
message is the assistant turn so far: its text pieces and crop images, in order.

Why every image in the assistant turn is followed by a text part (``""``, or ``"\\n"`` with
``image_newline``): with ``continue_final_message`` transformers' ``apply_chat_template`` tags the
*last text part* of the final message and cuts the rendered prompt right after it. An image after
that text is cut off with the rest of the turn (``<|im_end|>``), so the prompt holds one image
placeholder less than the request has images, and vLLM answers 500 "Failed to apply prompt
replacement for mm_items['image'][1]". With an empty text part after the image the cut falls right
after ``<|vision_end|>``: exactly vlir's token layout (``"\\n"``: the released agent's).

Sampling is the server's; the results are :class:`ServedTrajectory` objects that ``vlir eval`` and
``vlir infer`` read like the local engine's trajectories (text, answer, boxes, crops,
finish_reason). With vLLM's ``return_token_ids`` they also carry the token ids the server saw and
sampled, and say whether each round's prompt re-tokenized to exactly the previous prompt plus the
sampled ids (``token_exact``): what a trainer needs before it can learn from served rollouts.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vlir import geometry
from vlir.crops import decode_png, encode_png, render_crop
from vlir.geometry import MODEL_PIXELS, PixelBudget
from vlir.protocol import STOP_STRINGS, RoundEnd, end_round, extract_answer
from vlir.records import Box, Crop
from vlir.rollout.config import RolloutConfig

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

log = logging.getLogger(__name__)

IMAGE_TEXT = "<|vision_start|><|image_pad|><|vision_end|>"  # an image in trajectory text (as vlir's)
JSON_IMAGE_SEPARATOR = "\n"  # after a call's "]}" (vlir.rollout's rule)
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
# vLLM's request extensions the loop relies on (other servers may name them differently).
VLLM_EXTRAS = {"skip_special_tokens": True, "return_token_ids": True, "bad_words": list(VISION_TOKENS)}


@dataclass
class ServedTrajectory:
    """One rollout through a server. ``token_ids``/``action_mask`` are the last request's prompt ids
    plus its completion (1 = sampled), empty when the server returns no ids."""

    prompt_index: int
    text: str
    answer: str | None
    finish_reason: str
    crops: list[Crop] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    bad_calls: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    action_mask: list[int] = field(default_factory=list)
    prompt_length: int = 0
    token_exact: bool = True  # every round's prompt = previous prompt + sampled ids + inserted ids
    requests: int = 0
    prompt_tokens: int = 0  # summed over the rounds' usage (what the server billed)
    completion_tokens: int = 0

    @property
    def num_sampled(self) -> int:
        return self.completion_tokens


def data_url(image: "Image.Image") -> str:
    """An image as a PNG ``data:`` URL (lossless, so the server sees vlir's pixels)."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def _image_part(image: "Image.Image") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url(image)}}


@dataclass
class _State:
    index: int
    image: "Image.Image"
    messages: list[dict[str, Any]]
    seed: int | None
    text: str = ""  # trajectory text (images as IMAGE_TEXT)
    parts: list[dict[str, Any]] = field(default_factory=list)  # the assistant turn so far
    crops: list[Crop] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    bad_calls: list[str] = field(default_factory=list)
    rounds: int = 0
    sampled: int = 0
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    prompt_length: int = 0
    exact: bool = True
    requests: int = 0
    prompt_tokens: int = 0
    finish: str | None = None


class ServedRollout:
    """The loop over ``base_url``'s chat completions for model ``model``.

    ``config`` is the local engine's :class:`RolloutConfig` (presets and CLI flags mean the same);
    ``logits_processor``/``mode``/``keep_scores`` do not apply. ``model_budget`` is the pixel budget
    the served model sees the image in: images are sent resized to it (``resize_images``, as the
    released agent's ``qwen_vl_utils`` does before vLLM), so the ``bbox_2d`` numbers are read in a
    space vlir knows whatever the server's processor budget (which must contain it).
    ``extra_body`` is merged into every request (default: vLLM's :data:`VLLM_EXTRAS`);
    ``round_extra(index, round)`` adds per-round fields (the tests script the model with
    ``structured_outputs`` regexes).
    """

    def __init__(self, base_url: str, model: str, config: RolloutConfig | None = None, *,
                 model_budget: PixelBudget = MODEL_PIXELS, api_key: str = "EMPTY", chat: Any = None,
                 resize_images: bool = True, extra_body: dict[str, Any] | None = None,
                 round_extra: Callable[[int, int], dict[str, Any]] | None = None, concurrency: int = 8,
                 timeout_s: float = 600.0, client: Any = None):
        from vlir.models.chat import ChatConfig

        self.config = config or RolloutConfig()
        self.model = model
        self.base_url = base_url
        self.chat = chat or ChatConfig(model_budget=model_budget)
        if self.chat.model_budget != model_budget:
            raise ValueError(f"chat.model_budget {self.chat.model_budget} differs from model_budget {model_budget}")
        self.model_budget = model_budget
        # on the model's pixel grid, as the local engine renders them
        self.crop_budget = dataclasses.replace(self.config.crop_budget or self.chat.crop_budget,
                                               factor=model_budget.factor)
        self.resize_images = resize_images
        self.extra_body = dict(VLLM_EXTRAS if extra_body is None else extra_body)
        self.round_extra = round_extra
        self.concurrency = max(1, concurrency)
        self.settings = {**self.config.describe(), "engine": "openai", "base_url": base_url, "model": model,
                         "model_budget": [model_budget.min_pixels, model_budget.max_pixels],
                         "crop_budget": [self.crop_budget.min_pixels, self.crop_budget.max_pixels]}
        self.settings.pop("mode", None)  # the local engine's KV/re-prefill choice: not ours
        if client is None:
            from openai import OpenAI

            client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=2)
        self.client = client
        self._calls = 0

    # ---------------------------------------------------------------- public API
    def generate(self, prompts: list[tuple[str, "Image.Image"]], num_samples: int = 1) -> list[ServedTrajectory]:
        """``num_samples`` trajectories per ``(question, original image)``, prompt-major, each its
        own loop; up to ``concurrency`` loops run at once."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        jobs = [(i, q, img, s) for i, (q, img) in enumerate(prompts) for s in range(num_samples)]
        if len(jobs) <= 1:
            return [self._one(*job) for job in jobs]
        with ThreadPoolExecutor(min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(lambda job: self._one(*job), jobs))

    # ---------------------------------------------------------------- one trajectory
    def _one(self, index: int, question: str, image: "Image.Image", sample: int) -> ServedTrajectory:
        image = image.convert("RGB") if image.mode != "RGB" else image
        user: list[dict[str, Any]] = [_image_part(self._as_sent(image)),
                                      {"type": "text", "text": question + self.chat.instruction}]
        messages: list[dict[str, Any]] = []
        if self.chat.system is not None:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.chat.system}]})
        messages.append({"role": "user", "content": user})
        seed = None if self.config.temperature == 0 else self.config.seed + 7919 * index + sample
        state = _State(index, image, messages, seed)
        while state.finish is None:
            self._round(state)
        return ServedTrajectory(
            prompt_index=index, text=state.text, answer=extract_answer(state.text), finish_reason=state.finish,
            crops=state.crops, boxes=state.boxes, bad_calls=state.bad_calls, token_ids=state.ids,
            action_mask=state.mask, prompt_length=state.prompt_length, token_exact=state.exact,
            requests=state.requests, prompt_tokens=state.prompt_tokens, completion_tokens=state.sampled)

    def _as_sent(self, image: "Image.Image") -> "Image.Image":
        """The image resized to the model budget (a no-op for one already within it)."""
        if not self.resize_images:
            return image
        from PIL import Image as PILImage

        height, width = geometry.smart_resize(image.height, image.width, self.model_budget)
        if (width, height) == image.size:
            return image
        return image.resize((width, height), PILImage.Resampling.BICUBIC)

    def _request(self, state: _State) -> dict[str, Any]:
        cfg = self.config
        budget = cfg.max_new_tokens - state.sampled
        if cfg.tokens_per_round is not None:
            budget = min(budget, cfg.tokens_per_round)
        body = dict(self.extra_body)
        messages = list(state.messages)
        if state.parts:
            messages.append({"role": "assistant", "content": list(state.parts)})
            body.update(continue_final_message=True, add_generation_prompt=False)
        if self.round_extra is not None:
            body.update(self.round_extra(state.index, state.rounds))
        kwargs: dict[str, Any] = dict(model=self.model, messages=messages, max_tokens=budget,
                                      temperature=cfg.temperature, stop=list(STOP_STRINGS), extra_body=body)
        if cfg.top_p < 1.0:
            kwargs["top_p"] = cfg.top_p
        if state.seed is not None:
            kwargs["seed"] = state.seed + state.rounds
        response = self.client.chat.completions.create(**kwargs)
        return response.model_dump()

    def _round(self, state: _State) -> None:
        data = self._request(state)
        state.requests += 1
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        usage = data.get("usage") or {}
        state.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        n_sampled = int(usage.get("completion_tokens") or len(choice.get("token_ids") or ()))
        state.sampled += n_sampled
        self._track_ids(state, data.get("prompt_token_ids"), choice.get("token_ids"))
        stop = choice.get("stop_reason", choice.get("matched_stop"))
        stop = stop if isinstance(stop, str) and stop in STOP_STRINGS else None
        eos = choice.get("finish_reason") == "stop" and stop is None
        self._append_text(state, text + (stop or ""))
        if eos:
            state.finish = "eos"
            return
        end = end_round(text, stop)
        if end.kind != "answer":
            state.rounds += 1
        if end.kind == "answer":
            state.finish = "answer"
        elif self.config.max_rounds is not None and state.rounds >= self.config.max_rounds:
            state.finish = "max_rounds"
        elif end.kind == "call":
            self._on_call(state, end)
        if state.finish is None and state.sampled >= self.config.max_new_tokens:
            state.finish = "max_new_tokens"

    def _append_text(self, state: _State, text: str) -> None:
        state.text += text
        if state.parts and state.parts[-1]["type"] == "text":
            state.parts[-1] = {"type": "text", "text": state.parts[-1]["text"] + text}
        else:
            state.parts.append({"type": "text", "text": text})

    def _on_call(self, state: _State, end: RoundEnd) -> None:
        assert end.call is not None
        if end.call.error is not None:
            return self._bad_call(state, end.call.error)
        if len(state.crops) >= self.config.max_crops:
            state.finish = "max_crops"
            return
        width, height = state.image.size
        try:
            clipped = geometry.call_box(end.call.box, width, height, self.model_budget)
            crop = render_crop(state.image, clipped, self.crop_budget)
        except ValueError as exc:
            return self._bad_call(state, f"box {list(end.call.box or ())}: {exc}")
        after = JSON_IMAGE_SEPARATOR if self.config.image_newline else ""
        self._append_text(state, JSON_IMAGE_SEPARATOR)
        state.parts.append(_image_part(self._as_sent(decode_png(crop.png))))
        state.parts.append({"type": "text", "text": after})  # never an image last: see the module doc
        state.text += IMAGE_TEXT + after
        state.crops.append(crop)
        state.boxes.append(clipped)

    def _bad_call(self, state: _State, why: str) -> None:
        log.debug("prompt %d: bad call: %s", state.index, why)
        state.bad_calls.append(why)
        if self.config.bad_box == "end":
            state.finish = "bad_box"

    @staticmethod
    def _track_ids(state: _State, prompt_ids: list[int] | None, sampled: list[int] | None) -> None:
        """Keep the server's ids: the new prompt must extend what we hold (else the server
        re-tokenized the text differently: ``token_exact`` turns False and the mask of the part
        that changed is lost), then the sampled ids are appended with mask 1."""
        if prompt_ids is None or sampled is None:
            state.exact = False
            return
        if not state.ids:
            state.prompt_length = len(prompt_ids)
            state.ids, state.mask = list(prompt_ids), [0] * len(prompt_ids)
        elif prompt_ids[:len(state.ids)] == state.ids:
            state.mask += [0] * (len(prompt_ids) - len(state.ids))
            state.ids = list(prompt_ids)
        else:
            state.exact = False
            common = next((i for i, (a, b) in enumerate(zip(prompt_ids, state.ids)) if a != b),
                          min(len(prompt_ids), len(state.ids)))
            state.mask = state.mask[:common] + [0] * (len(prompt_ids) - common)
            state.ids = list(prompt_ids)
        state.ids += list(sampled)
        state.mask += [1] * len(sampled)



_REGEX_SPECIAL = set(".^$*+?{}[]\\|()/")


def literal_regex(text: str) -> str:
    """A regex matching exactly ``text`` (escapes that xgrammar's regex reader accepts)."""
    return "".join("\\n" if c == "\n" else "\\t" if c == "\t" else "\\" + c if c in _REGEX_SPECIAL else c
                   for c in text)


def scripted_rounds(segments: list[str]) -> Callable[[int, int], dict[str, Any]]:
    """``round_extra`` that makes a served model write ``segments[k]`` in round ``k`` (vLLM's
    ``structured_outputs`` regex; later rounds are free): the served twin of
    :class:`vlir.testing.scripted.ScriptedLogits`, so a random model writes crop calls and answers."""

    def extra(index: int, round_: int) -> dict[str, Any]:
        if round_ < len(segments):
            return {"structured_outputs": {"regex": literal_regex(segments[round_])}}
        return {}

    return extra


def checkpoint_budget(folder: str) -> PixelBudget | None:
    """The image budget a local checkpoint folder's processor config states (``size`` or
    ``min_pixels``/``max_pixels``), read as JSON without transformers, in its family's box convention
    (:meth:`vlir.models.family.ModelFamily.budget`; Qwen2.5-VL's without a ``config.json``); None when
    there is none."""
    import json
    from pathlib import Path

    from vlir.models.registry import family_for, family_of

    for name in ("processor_config.json", "preprocessor_config.json"):
        path = Path(folder) / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text("utf-8"))
        data = data.get("image_processor", data)
        size = data.get("size") or {}
        low, high = size.get("shortest_edge", data.get("min_pixels")), size.get("longest_edge", data.get("max_pixels"))
        if low and high:
            family = family_of(folder) if (Path(folder) / "config.json").is_file() else family_for("qwen2_5_vl")
            factor = int(data.get("patch_size", family.patch_size)) * int(data.get("merge_size", family.merge_size))
            return family.budget(int(low), int(high), factor=factor)
    return None


def served_engine(model: str, base_url: str, agent: str = "vlir", min_pixels: int | None = None,
                  max_pixels: int | None = None, crop_min_pixels: int | None = None,
                  crop_max_pixels: int | None = None, api_key_env: str = "OPENAI_API_KEY",
                  settings: dict[str, Any] | None = None) -> ServedRollout:
    """``vlir infer/eval --engine openai``: the ``agent`` preset with ``settings`` (None = the
    preset's). The image budget is ``min/max_pixels``, else the preset's (vlmr3), else what a local
    folder named ``model`` states, else vlir's default. Bad settings raise ValueError."""
    import os
    from pathlib import Path

    from vlir.geometry import CROP_PIXELS
    from vlir.rollout.config import VLMR3_MODEL_PIXELS

    settings = {k: v for k, v in (settings or {}).items() if k != "mode"}
    base = VLMR3_MODEL_PIXELS if agent == "vlmr3" else checkpoint_budget(model) if Path(model).is_dir() else None
    base = base or MODEL_PIXELS
    budget = dataclasses.replace(base, min_pixels=min_pixels or base.min_pixels,
                                 max_pixels=max_pixels or base.max_pixels)
    config = RolloutConfig.preset(agent, **settings)
    if crop_min_pixels is not None or crop_max_pixels is not None:
        crops = config.crop_budget or CROP_PIXELS
        config.crop_budget = PixelBudget(crop_min_pixels or crops.min_pixels, crop_max_pixels or crops.max_pixels)
    return ServedRollout(base_url, model, config, model_budget=budget, api_key=os.environ.get(api_key_env) or "EMPTY")
