"""Token and pixel facts read off a loaded processor: the special ids the chat format and the
rollout engine use, the ids a policy must never sample, and the image pixel budget that defines
the space ``{"bbox_2d": [...]}`` coordinates live in. The token names come from the model family
(:class:`vlir.models.family.ModelFamily`); ids always come from the tokenizer, never hard-coded."""

from __future__ import annotations

from typing import Any

from vlir.geometry import PixelBudget
from vlir.models.family import ModelFamily


def _family(family: ModelFamily | None, processor: Any = None) -> ModelFamily:
    if family is not None:
        return family
    from vlir.models.registry import family_of_processor

    return family_of_processor(processor)


def special_ids(processor: Any, family: ModelFamily | None = None) -> dict[str, int]:
    """Ids of the tokens the chat format and the rollout engine use. ``eos`` is ``<|im_end|>``
    (a chat turn ends there); ``pad`` is the tokenizer's pad token, else ``<|endoftext|>``."""
    fam = _family(family, processor)
    tok = getattr(processor, "tokenizer", processor)
    ids: dict[str, int] = {}
    for key, token in fam.special_tokens.items():
        tid = tok.convert_tokens_to_ids(token)
        if tid is None or tok.convert_ids_to_tokens(tid) != token:
            raise ValueError(f"tokenizer has no {token} token: not a {fam.name} tokenizer")
        ids[key] = int(tid)
    ids["eos"] = ids["im_end"]
    ids["pad"] = int(tok.pad_token_id) if tok.pad_token_id is not None else ids["endoftext"]
    return ids


def vision_token_ids(processor: Any, family: ModelFamily | None = None) -> list[int]:
    """Ids to suppress in generation: vision tokens are inserted by the engine, never sampled."""
    ids = special_ids(processor, family)
    return [ids[k] for k in _family(family, processor).vision_tokens]


def model_budget(processor: Any) -> PixelBudget:
    """The image pixel budget of the processor: what ``smart_resize`` the model's view uses, and so
    the space ``{"bbox_2d": [...]}`` coordinates live in (its family's box convention)."""
    ip = getattr(processor, "image_processor", processor)
    size = ip.size
    get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    return _family(None, processor).budget(int(get("shortest_edge")), int(get("longest_edge")),
                                           factor=int(ip.patch_size) * int(ip.merge_size))


def crop_budget(processor: Any, knob: PixelBudget | None = None) -> PixelBudget:
    """A rendered crop's budget for the user's pixel knob (None: the family's default crop budget)
    on the processor's family grid (:meth:`vlir.models.family.ModelFamily.crop`), so the
    processor takes the crop as it is: the one place a crop knob meets a model."""
    return _family(None, processor).crop(knob)
