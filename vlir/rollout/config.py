"""Settings of the crop-and-zoom loop (both backends) and the one preset system.

``RolloutConfig()`` is vlir's agent; ``RolloutConfig.preset("vlmr3")`` is the released VLM-R³
agent (``AgentVLMVLLM`` in ``src/model/r3_vllm.py``) as far as an engine that keeps token ids can
be: 8 generation rounds of at most 2048 tokens, a newline after each inserted crop's image, bad
calls skipped, its class-default sampling, image and crop budgets; ``"vlmr3_eval"`` is what the
authors' evaluation scripts (``src/eval/test_*_r3.py``) ran: that agent, greedy, larger budgets.
Every setting and budget a run depends on is a field here, so a preset holds all of them and the
eval settings (:class:`vlir.eval.benchmarks.presets.EvalSettings`), R-GRPO's ``rollout:`` section
and the CLI flags are all overrides of one preset. ``docs/inference.md`` lists every difference
between vlir's agent and the released one. The text rules themselves (stop strings, reading a
call, the answer) are :mod:`vlir.protocol`'s and the same under every setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from vlir.config import Config, ConfigError, option
from vlir.geometry import FACTOR, PixelBudget

MODES = ("kv", "reprefill")
BAD_BOX_POLICIES = ("skip", "end")
ENGINES = ("local", "served")
MAX_CROPS = 8  # crops per trajectory: the released agent's (at most 8 rounds), vlir's default
PX = FACTOR * FACTOR  # the released agent's budgets are counted in Qwen2.5-VL's grid cells (28 px)

# The released agent's class defaults (AgentVLMVLLM.__init__ and process(max_iterations=8)), with
# its processor's image budget.
VLMR3 = {
    "temperature": 1.0, "max_rounds": 8, "tokens_per_round": 2048, "max_new_tokens": 8 * 2048,
    "max_crops": MAX_CROPS, "image_newline": True, "bad_box": "skip",
    "min_pixels": 4 * PX, "max_pixels": 2048 * PX, "crop_budget": PixelBudget(4 * PX, 1024 * PX),
}
# What its evaluation scripts (src/eval/test_vstar_r3.py and siblings) ran with: greedy, larger budgets.
VLMR3_EVAL = {**VLMR3, "temperature": 0.0, "min_pixels": 32 * PX, "max_pixels": 8192 * PX,
              "crop_budget": PixelBudget(32 * PX, 4096 * PX)}
PRESETS: dict[str, dict[str, Any]] = {"vlir": {}, "vlmr3": VLMR3, "vlmr3_eval": VLMR3_EVAL}
# The released agent's image budget (the processor's: give it to load_model / --min-pixels --max-pixels).
VLMR3_MODEL_PIXELS = PixelBudget(VLMR3["min_pixels"], VLMR3["max_pixels"])


@dataclass
class RolloutConfig(Config):
    """Sampling, loop, budget and backend settings of one rollout engine (:func:`vlir.rollout.
    build_engine`); R-GRPO's ``rollout:`` YAML section. ``help()`` lists them.

    The fields not in YAML (objects): ``chat`` (a :class:`vlir.models.chat.ChatConfig`; None =
    ``ChatConfig.for_processor(processor)``: its ``model_budget`` is the space of the bbox numbers,
    its ``crop_budget`` renders the crops unless ``crop_budget`` is set here), ``logits_processor``
    (``f(input_ids, scores) -> scores`` run first on each step's logits, ``input_ids`` being each
    live row's trajectory so far, left-padded as in HF ``generate``; local backend only).
    Log-probs are always of ``softmax(logits / max(temperature, eps))`` of the raw logits (what a
    trainer recomputes), before top-p and suppression.
    """

    kind = "rollout"
    section = "rollout"

    temperature: float = option(1.0, "Sampling temperature; 0 = greedy.", ge=0)
    top_p: float = option(1.0, "Nucleus sampling mass (1.0 = off).", gt=0, le=1)
    max_new_tokens: int = option(1024, "Sampled tokens per trajectory, over all its rounds.", ge=1)
    max_crops: int = option(MAX_CROPS, "A good call beyond this many crops ends the trajectory (max_crops).", ge=0)
    max_rounds: int | None = option(None, "Generation rounds; the round that reaches it ends the trajectory "
                                    "unless it answered. null = no limit (vlir); the released agent: 8.", ge=1)
    tokens_per_round: int | None = option(None, "A round that samples this many tokens ends there, read as the "
                                          "released loop reads it. null = no limit (vlir); the agent: 2048.", ge=1)
    image_newline: bool = option(False, "Write a newline after each inserted crop's image block, as the released "
                                 "agent's rendering does at inference (its training data and vlir's SFT have none).")
    bad_box: str = option("skip", "A bad call (one vlir.protocol refuses, or a box outside the image): skip (no "
                          "crop, generation goes on: the released agent) or end (finish_reason bad_box).",
                          choices=BAD_BOX_POLICIES)
    mode: str = option("kv", "Local backend: kv (reuse the cache across crops) or reprefill (re-run the prefix "
                       "after each crop: the slow reference).", choices=MODES)
    min_pixels: int | None = option(None, "Image budget of the processor, each bound alone (null: the "
                                    "checkpoint's).", ge=1)
    max_pixels: int | None = option(None, "Image budget of the processor (null: the checkpoint's).", ge=1)
    crop_budget: PixelBudget | None = option(None, "Pixel budget of rendered crops, [min, max] (null: the chat "
                                             "config's, the data build's, so replays reproduce stored crops).")
    seed: int = option(0, "Seed of the sampling generator (advanced across calls, never reset).")
    engine: str = option("local", "local (transformers in this process, KV reuse) or served (an OpenAI-compatible "
                         "server such as vLLM that continues assistant turns holding images).", choices=ENGINES)
    base_url: list[str] = option([], "served: the server(s), e.g. [http://127.0.0.1:8000/v1]; several are used "
                                 "least-in-flight first.")
    served_model: str = option("", "served: the model name the server knows (empty: the checkpoint path).")
    chat: Any = option(None, "A vlir.models.chat.ChatConfig (Python only; null: the processor's).")
    logits_processor: Callable[[Any, Any], Any] | None = option(None, "Local backend hook on each step's logits.")
    keep_scores: bool = option(False, "Keep each sampled position's raw logits on the trajectory (tests).")

    def __post_init__(self) -> None:
        if isinstance(self.crop_budget, (list, tuple)):  # YAML: [min, max]
            if len(self.crop_budget) != 2:
                raise ConfigError(f"rollout.crop_budget must be [min_pixels, max_pixels], got {self.crop_budget!r}")
            self.crop_budget = PixelBudget(int(self.crop_budget[0]), int(self.crop_budget[1]))
        if isinstance(self.base_url, str):
            self.base_url = [self.base_url]
        super().__post_init__()

    def validate(self) -> list[str]:
        problems = []
        if self.engine == "served" and not self.base_url:
            problems.append("rollout.engine served needs rollout.base_url (e.g. [http://127.0.0.1:8000/v1])")
        return problems

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "RolloutConfig":
        """``"vlir"`` (the defaults), ``"vlmr3"`` (the released agent) or ``"vlmr3_eval"`` (its
        evaluation scripts), then ``overrides`` (None values are ignored, so CLI flags left unset
        keep the preset's)."""
        if name not in PRESETS:
            raise ValueError(f"unknown agent preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "") -> "RolloutConfig":
        """A YAML ``rollout:`` section: an optional ``preset`` key, then the fields that override it."""
        values = dict(values or {})
        name = values.pop("preset", "vlir")
        cls.check_keys(values, f"{where}: " if where else "")
        try:
            return cls.preset(str(name), **values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}" if where else str(exc)) from None

    def with_(self, **changes: Any) -> "RolloutConfig":
        return replace(self, **changes)

    def image_budget(self) -> tuple[int | None, int | None]:
        """The processor's ``(min_pixels, max_pixels)`` this config asks for (None: the checkpoint's)."""
        return self.min_pixels, self.max_pixels

    def describe(self) -> dict[str, Any]:
        """The loop settings as JSON-able values (recorded next to predictions and in checkpoints)."""
        keys = ("temperature", "top_p", "max_new_tokens", "max_crops", "max_rounds", "tokens_per_round",
                "image_newline", "bad_box", "mode", "seed")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        if self.crop_budget is not None:
            out["crop_budget"] = [self.crop_budget.min_pixels, self.crop_budget.max_pixels]
        return out
