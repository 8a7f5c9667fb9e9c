"""The served backend of the crop-and-zoom loop: ``vlir infer/eval --engine openai``, R-GRPO's
``rollout.engine: served``.

The same round policy as the local backend (:class:`vlir.rollout.policy.RoundPolicy`: generate
until a :mod:`vlir.protocol` stop string, read the call, map the box, render the crop, insert it,
continue), run over chat completions of any
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

Sampling is the server's; the results are :class:`vlir.rollout.policy.Trajectory` objects, the
local backend's type. With vLLM's ``return_token_ids`` they also carry the token ids the server saw
and sampled, and say whether each round's prompt re-tokenized to exactly the previous prompt plus
the sampled ids (``token_exact``): what a trainer needs before it can learn from served rollouts.
Several servers (``base_url`` a list) share the trajectories, each round going to the one with the
fewest requests in flight.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vlir import geometry
from vlir.crops import decode_png, encode_png, render_crop
from vlir.geometry import MODEL_PIXELS, PixelBudget
from vlir.protocol import STOP_STRINGS, RoundEnd, end_round, extract_answer
from vlir.records import Box
from vlir.rollout.config import RolloutConfig
from vlir.rollout.policy import JSON_IMAGE_SEPARATOR, RoundPolicy, RoundState, Trajectory

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from vlir.models.family import ModelFamily

log = logging.getLogger(__name__)


def _default_family() -> "ModelFamily":
    from vlir.models.registry import default_family

    return default_family()


def image_text(family: "ModelFamily | None" = None) -> str:
    """An image in trajectory text: the family's image block (as the local backend's text holds it)."""
    return (family or _default_family()).image_block


def vllm_extras(family: "ModelFamily | None" = None) -> dict[str, Any]:
    """vLLM's request extensions the loop relies on (other servers may name them differently): the
    family's vision tokens are never sampled, and the token ids come back."""
    family = family or _default_family()
    return {"skip_special_tokens": True, "return_token_ids": True,
            "bad_words": [family.special_tokens[n] for n in family.vision_tokens]}


IMAGE_TEXT = image_text()  # Qwen2.5-VL's and Qwen3-VL's (the families share it)


def data_url(image: "Image.Image") -> str:
    """An image as a PNG ``data:`` URL (lossless, so the server sees vlir's pixels)."""
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def _image_part(image: "Image.Image") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url(image)}}


@dataclass(kw_only=True)
class _State(RoundState):
    index: int
    messages: list[dict[str, Any]]
    seed: int | None
    text: str = ""  # trajectory text (images as the family's image block)
    parts: list[dict[str, Any]] = field(default_factory=list)  # the assistant turn so far
    sampled: int = 0
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = None  # the server's, aligned with ids (0.0 where not sampled); None: none
    prompt_length: int = 0
    exact: bool = True
    requests: int = 0
    prompt_tokens: int = 0
    sent: list[Any] = field(default_factory=list)  # the images as the server got them, in order


class _Endpoints:
    """One :class:`vlir.llm.client.ChatCaller` per server; each request goes to the one with the
    fewest in flight (ties: the first), as the teacher's replicas are chosen."""

    def __init__(self, clients: list[Any]):
        self.clients = clients
        self.in_flight = [0] * len(clients)
        self.sent = [0] * len(clients)
        self._lock = threading.Lock()

    def create(self, **kwargs: Any) -> Any:
        with self._lock:
            i = min(range(len(self.clients)), key=lambda k: self.in_flight[k])
            self.in_flight[i] += 1
            self.sent[i] += 1
        try:
            return self.clients[i].create(**kwargs)
        finally:
            with self._lock:
                self.in_flight[i] -= 1


class ServedRollout:
    """The loop over ``base_url``'s chat completions for model ``model``.

    ``config`` is the :class:`RolloutConfig` both backends read (presets and CLI flags mean the
    same); ``logits_processor``/``mode``/``keep_scores`` do not apply. ``model_budget`` is the pixel
    budget the served model sees the image in: images are sent resized to it (``resize_images``, as
    the released agent's ``qwen_vl_utils`` does before vLLM), so the ``bbox_2d`` numbers are read in
    a space vlir knows whatever the server's processor budget (which must contain it). ``base_url``
    is one server or a list (least-in-flight). ``family`` (default Qwen2.5-VL's) gives the image
    block and the vision tokens never to sample. ``extra_body`` is merged into every request
    (default: :func:`vllm_extras`); ``round_extra(index, round)`` adds per-round fields (the tests
    script the model with ``structured_outputs`` regexes). ``policy_version`` is stamped on each
    trajectory (R-GRPO bumps it after each weight sync). With a ``processor`` (R-GRPO's), each
    trajectory also carries ``pixel_values``/``image_grid_thw`` of the images exactly as sent, and
    is marked not ``token_exact`` where the server's ids hold another number of image tokens.
    """

    def __init__(self, base_url: str | list[str], model: str, config: RolloutConfig | None = None, *,
                 model_budget: PixelBudget = MODEL_PIXELS, api_key_env: str = "OPENAI_API_KEY", chat: Any = None,
                 resize_images: bool = True, extra_body: dict[str, Any] | None = None,
                 round_extra: Callable[[int, int], dict[str, Any]] | None = None, concurrency: int = 8,
                 timeout_s: float = 600.0, client: Any = None, family: "ModelFamily | None" = None,
                 processor: Any = None):
        from vlir.models.chat import ChatConfig

        self.config = config or RolloutConfig()
        self.model = model
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("the served engine needs at least one base_url")
        self.base_url = urls[0] if len(urls) == 1 else urls
        self.chat = chat or self.config.chat or ChatConfig(model_budget=model_budget)
        if self.chat.model_budget != model_budget:
            raise ValueError(f"chat.model_budget {self.chat.model_budget} differs from model_budget {model_budget}")
        self.model_budget = model_budget
        self.family = family or _default_family()
        self.image_text = self.family.image_block
        self.crop_budget = self.family.crop(self.config.crop_budget or self.chat.crop_budget)
        self.policy = RoundPolicy(self.config, model_budget)
        self.resize_images = resize_images
        self.extra_body = dict(vllm_extras(self.family) if extra_body is None else extra_body)
        self.round_extra = round_extra
        self.concurrency = max(1, concurrency)
        self.policy_version = 0
        self.processor = processor  # given (a trainer's): trajectories carry their images' tensors
        self.settings = {**self.config.describe(), "engine": "openai", "base_url": self.base_url, "model": model,
                         "model_budget": [model_budget.min_pixels, model_budget.max_pixels],
                         "crop_budget": [self.crop_budget.min_pixels, self.crop_budget.max_pixels]}
        self.settings.pop("mode", None)  # the local engine's KV/re-prefill choice: not ours
        # the one LLM client (vlir.llm): its retry policy and key reading, two transport retries, no
        # cache (sampling must not be replayed); an injected client (tests) sits under the same caller
        from vlir.llm.client import served_caller

        raw = client if isinstance(client, list) else [client] * len(urls)
        self.endpoints = _Endpoints([served_caller(u, model, api_key_env=api_key_env, timeout_s=timeout_s,
                                                   max_retries=2, client=c) for u, c in zip(urls, raw)])

    # ---------------------------------------------------------------- public API
    def generate(self, prompts: list[tuple[str, "Image.Image"]], num_samples: int = 1) -> list[Trajectory]:
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
    def _one(self, index: int, question: str, image: "Image.Image", sample: int) -> Trajectory:
        image = image.convert("RGB") if image.mode != "RGB" else image
        sent = self._as_sent(image)
        user: list[dict[str, Any]] = [_image_part(sent),
                                      {"type": "text", "text": question + self.chat.instruction}]
        messages: list[dict[str, Any]] = []
        if self.chat.system is not None:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.chat.system}]})
        messages.append({"role": "user", "content": user})
        seed = None if self.config.temperature == 0 else self.config.seed + 7919 * index + sample
        state = _State(image=image, index=index, messages=messages, seed=seed, sent=[sent],
                       logprobs=[] if self._want_logprobs() else None)
        version = self.policy_version
        while state.finish is None:
            self._round(state)
        traj = Trajectory(
            prompt_index=index, text=state.text, answer=extract_answer(state.text), finish_reason=state.finish,
            crops=state.crops, boxes=state.boxes, bad_calls=state.bad_calls, token_ids=state.ids,
            action_mask=state.mask, logprobs=state.logprobs or [], prompt_length=state.prompt_length,
            token_exact=state.exact,
            requests=state.requests, prompt_tokens=state.prompt_tokens, completion_tokens=state.sampled,
            policy_version=version)
        if self.processor is not None:
            self._attach_images(traj, state.sent)
        return traj

    def _attach_images(self, traj: Trajectory, sent: list[Any]) -> None:
        """The tensors of the images as sent (the trainer's forward needs them); a trajectory whose
        server ids hold another number of image tokens than they make is not token-exact."""
        import torch

        from vlir.models import chat

        out = [chat.image_inputs([image], self.processor) for image in sent]
        traj.pixel_values = torch.cat([o["pixel_values"] for o in out])
        traj.image_grid_thw = torch.cat([o["image_grid_thw"].reshape(-1, 3) for o in out])
        pad = self.processor.tokenizer.convert_tokens_to_ids(self.family.special_tokens["image_pad"])
        expected = int(traj.image_grid_thw.prod(-1).sum()) // self.family.merge_size ** 2
        if sum(1 for t in traj.token_ids if t == pad) != expected:
            traj.token_exact = False

    def _as_sent(self, image: "Image.Image") -> "Image.Image":
        """The image resized to the model budget (a no-op for one already within it)."""
        if not self.resize_images:
            return image
        from PIL import Image as PILImage

        height, width = geometry.smart_resize(image.height, image.width, self.model_budget)
        if (width, height) == image.size:
            return image
        return image.resize((width, height), PILImage.Resampling.BICUBIC)

    def _want_logprobs(self) -> bool:
        """A trainer's engine (it has a processor) asks for the sampled tokens' log-probs where
        vLLM's (raw logits, its default ``--logprobs-mode``) are the sampling distribution: at
        temperature 1 without top-p. R-GRPO logs their distance from its own (``rollout/logprob_gap``)."""
        return self.processor is not None and self.config.temperature == 1.0 and self.config.top_p >= 1.0

    def _request(self, state: _State) -> dict[str, Any]:
        cfg = self.config
        body = dict(self.extra_body)
        messages = list(state.messages)
        if state.parts:
            messages.append({"role": "assistant", "content": list(state.parts)})
            body.update(continue_final_message=True, add_generation_prompt=False)
        if self.round_extra is not None:
            body.update(self.round_extra(state.index, state.rounds))
        kwargs: dict[str, Any] = dict(model=self.model, messages=messages, max_tokens=self.policy.round_limit(state.sampled),
                                      temperature=cfg.temperature, stop=list(STOP_STRINGS), extra_body=body)
        if cfg.top_p < 1.0:
            kwargs["top_p"] = cfg.top_p
        if state.seed is not None:
            kwargs["seed"] = state.seed + state.rounds
        if state.logprobs is not None:
            kwargs["logprobs"] = True
        response = self.endpoints.create(**kwargs)
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
        self._track_ids(state, data.get("prompt_token_ids"), choice.get("token_ids"),
                        [c["logprob"] for c in ((choice.get("logprobs") or {}).get("content") or [])])
        stop = choice.get("stop_reason", choice.get("matched_stop"))
        stop = stop if isinstance(stop, str) and stop in STOP_STRINGS else None
        eos = choice.get("finish_reason") == "stop" and stop is None
        self._append_text(state, text + (stop or ""))
        if eos:
            state.finish = "eos"
            return
        end = end_round(text, stop)
        if end.kind == "answer":
            self.policy.answered(state)
        elif end.kind == "call":
            assert end.call is not None
            rendered = self.policy.round_ended(state, box=end.call.box if end.call.error is None else None,
                                               error=end.call.error, render=self._render)
            if rendered is not None:
                self._insert_crop(state, rendered[0])
        else:
            self.policy.round_ended(state)
        self.policy.over_budget(state, state.sampled)

    def _render(self, image: "Image.Image", box: Box) -> tuple:
        return (render_crop(image, box, self.crop_budget),)

    def _append_text(self, state: _State, text: str) -> None:
        state.text += text
        if state.parts and state.parts[-1]["type"] == "text":
            state.parts[-1] = {"type": "text", "text": state.parts[-1]["text"] + text}
        else:
            state.parts.append({"type": "text", "text": text})

    def _insert_crop(self, state: _State, crop) -> None:
        after = JSON_IMAGE_SEPARATOR if self.config.image_newline else ""
        self._append_text(state, JSON_IMAGE_SEPARATOR)
        state.sent.append(self._as_sent(decode_png(crop.png)))
        state.parts.append(_image_part(state.sent[-1]))
        state.parts.append({"type": "text", "text": after})  # never an image last: see the module doc
        state.text += self.image_text + after

    @staticmethod
    def _track_ids(state: _State, prompt_ids: list[int] | None, sampled: list[int] | None,
                   sampled_logprobs: list[float] | None = None) -> None:
        """Keep the server's ids: the new prompt must extend what we hold (else the server
        re-tokenized the text differently: ``token_exact`` turns False and the mask of the part
        that changed is lost), then the sampled ids are appended with mask 1 (and, where the
        state keeps them, their log-probs; a round without one per sampled id drops them all)."""
        if prompt_ids is None or sampled is None:
            state.exact = False
            return
        if not state.ids:
            state.prompt_length = len(prompt_ids)
            state.ids, state.mask = list(prompt_ids), [0] * len(prompt_ids)
            common = 0
        elif prompt_ids[:len(state.ids)] == state.ids:
            common = len(state.ids)
            state.mask += [0] * (len(prompt_ids) - len(state.ids))
            state.ids = list(prompt_ids)
        else:
            state.exact = False
            common = next((i for i, (a, b) in enumerate(zip(prompt_ids, state.ids)) if a != b),
                          min(len(prompt_ids), len(state.ids)))
            state.mask = state.mask[:common] + [0] * (len(prompt_ids) - common)
            state.ids = list(prompt_ids)
        if state.logprobs is not None:
            whole = sampled_logprobs is not None and len(sampled_logprobs) == len(sampled)
            state.logprobs = (state.logprobs[:common] + [0.0] * (len(prompt_ids) - common) + list(sampled_logprobs)
                              if whole else None)
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

    from vlir.models.registry import default_family, family_of

    for name in ("processor_config.json", "preprocessor_config.json"):
        path = Path(folder) / name
        if not path.is_file():
            continue
        data = json.loads(path.read_text("utf-8"))
        data = data.get("image_processor", data)
        size = data.get("size") or {}
        low, high = size.get("shortest_edge", data.get("min_pixels")), size.get("longest_edge", data.get("max_pixels"))
        if low and high:
            family = family_of(folder) if (Path(folder) / "config.json").is_file() else default_family()
            factor = int(data.get("patch_size", family.patch_size)) * int(data.get("merge_size", family.merge_size))
            return family.budget(int(low), int(high), factor=factor)
    return None

