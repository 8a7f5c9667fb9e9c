"""Settings of the rollout engine (:class:`vlir.rollout.Rollout`), and the released agent's preset.

``RolloutConfig()`` is vlir's agent; ``RolloutConfig.preset("vlmr3")`` is the released VLM-R³
agent (``AgentVLMVLLM`` in ``src/model/r3_vllm.py``) as far as an engine that keeps token ids can
be: 8 generation rounds of at most 2048 tokens, a newline after each inserted crop's
``<|vision_end|>``, bad calls skipped, its class-default sampling and crop budget. The README
("vlir's agent and the released one") lists every difference and why vlir's defaults differ.
The text rules themselves (stop strings, reading a call, the answer) are :mod:`vlir.protocol`'s
and the same under every setting.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from vlir.geometry import PixelBudget

MODES = ("kv", "reprefill")
BAD_BOX_POLICIES = ("skip", "end")

# The released agent's class defaults (AgentVLMVLLM.__init__ and process(max_iterations=8)).
VLMR3 = {
    "temperature": 1.0, "max_rounds": 8, "tokens_per_round": 2048, "max_new_tokens": 8 * 2048,
    "max_crops": 8, "image_newline": True, "bad_box": "skip",
    "crop_budget": PixelBudget(4 * 28 * 28, 1024 * 28 * 28),
}
# ... and its image budget (the processor's: give it to load_model / --min-pixels --max-pixels).
VLMR3_MODEL_PIXELS = PixelBudget(4 * 28 * 28, 2048 * 28 * 28)
# What its V* evaluation (src/eval/test_vstar_r3.py) ran with: greedy, larger budgets.
VLMR3_VSTAR = {"temperature": 0.0, "crop_budget": PixelBudget(32 * 28 * 28, 4096 * 28 * 28)}
VLMR3_VSTAR_MODEL_PIXELS = PixelBudget(32 * 28 * 28, 8192 * 28 * 28)
PRESETS = {"vlir": {}, "vlmr3": VLMR3}


@dataclass
class RolloutConfig:
    """Sampling and loop settings of :class:`vlir.rollout.Rollout`.

    temperature: 0 means greedy; log-probs are always of ``softmax(logits / max(temperature, eps))``
        of the raw model logits (what a trainer recomputes), before top-p and suppression.
    top_p: nucleus sampling mass (1.0 = off).
    max_new_tokens: budget of *sampled* tokens per trajectory, over all its rounds.
    max_crops: a good call beyond this many crops ends the trajectory (``max_crops``).
    max_rounds: generation rounds (a round ends at a stop string or its token limit); the round
        that reaches it ends the trajectory (``max_rounds``) unless it answered. None = no limit
        (vlir); the released agent: 8.
    tokens_per_round: a round that samples this many tokens ends there, read as the released loop
        reads it (a call in it is acted on). None = no per-round limit (vlir); the agent: 2048.
    image_newline: write ``"\\n"`` after each inserted crop's ``<|vision_end|>``, as the released
        agent's rendering does at inference (its training data has none; vlir's SFT neither, so
        vlir's default is False).
    bad_box: what a bad call does (one :mod:`vlir.protocol` refuses, or a box that maps outside the
        image): ``"skip"`` (no crop, generation goes on: the released agent) or ``"end"`` (the
        trajectory ends, ``bad_box``).
    mode: ``"kv"`` (reuse the cache across crops) or ``"reprefill"`` (re-run the prefix: reference).
    chat: :class:`vlir.models.chat.ChatConfig` (instruction, budgets); None =
        ``ChatConfig.for_processor(processor)``. Its ``model_budget`` is the space of the bbox
        numbers; its ``crop_budget`` renders the crops unless ``crop_budget`` is set here.
    crop_budget: pixel budget of rendered crops; None = the chat config's (the data build's
        :data:`vlir.geometry.CROP_PIXELS`, so replays reproduce stored crops).
    seed: seed of the engine's sampling generator (advanced across calls, never reset).
    logits_processor: optional ``f(input_ids, scores) -> scores`` run first on each step's logits,
        ``input_ids`` being each live row's trajectory so far, left-padded (as in HF ``generate``).
    keep_scores: keep each sampled position's raw logits on the trajectory (tests, debugging).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    max_crops: int = 8
    max_rounds: int | None = None
    tokens_per_round: int | None = None
    image_newline: bool = False
    bad_box: str = "skip"
    mode: str = "kv"
    chat: Any = None
    crop_budget: PixelBudget | None = None
    seed: int = 0
    logits_processor: Callable[[Any, Any], Any] | None = None
    keep_scores: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.bad_box not in BAD_BOX_POLICIES:
            raise ValueError(f"bad_box must be one of {BAD_BOX_POLICIES}, got {self.bad_box!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1 or self.max_crops < 0:
            raise ValueError("max_new_tokens must be >= 1 and max_crops >= 0")
        for name in ("max_rounds", "tokens_per_round"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None (no limit), got {getattr(self, name)}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "RolloutConfig":
        """``"vlir"`` (the defaults) or ``"vlmr3"`` (the released agent), then ``overrides``
        (None values are ignored, so CLI flags left unset keep the preset's)."""
        if name not in PRESETS:
            raise ValueError(f"unknown agent preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}})

    def with_(self, **changes: Any) -> "RolloutConfig":
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The loop settings as JSON-able values (recorded next to predictions)."""
        keys = ("temperature", "top_p", "max_new_tokens", "max_crops", "max_rounds", "tokens_per_round",
                "image_newline", "bad_box", "mode", "seed")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        if self.crop_budget is not None:
            out["crop_budget"] = [self.crop_budget.min_pixels, self.crop_budget.max_pixels]
        return out
