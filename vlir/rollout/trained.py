"""What a checkpoint was trained with, written beside its weights and read back by inference.

SFT and R-GRPO write :data:`INFERENCE_FILE` into the folder they save the model to: the chat the
model learned (instruction, system prompt, tags, crop budget), the processor's image budget and
the rollout preset and loop settings. ``vlir infer``/``vlir eval``/benchmarks build their engine
from it by default (:func:`vlir.rollout.factory.build_engine`), so a model trained with
``chat: {instruction: ""}`` is asked its questions without the VLM-R³ instruction it never saw;
their flags (``--instruction``, ``--agent``, ``--max-crops`` ...) override it. A folder without
the file (the released checkpoint, a base model) gets the defaults. JSON, no torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from vlir.geometry import PixelBudget

INFERENCE_FILE = "vlir_inference.json"
# loop settings a checkpoint's rollouts ran with that inference keeps (sampling and seed are the
# caller's: infer and eval are greedy by default)
LOOP_KEYS = ("max_new_tokens", "max_crops", "max_rounds", "tokens_per_round", "image_newline", "bad_box")


def _jsonable(value: Any) -> Any:
    if isinstance(value, PixelBudget):
        return [value.min_pixels, value.max_pixels]
    return value


def write(folder: str | Path, chat: Any, *, preset: str = "vlir", rollout: Mapping[str, Any] | None = None,
          min_pixels: int = 0, max_pixels: int = 0, trainer: str = "") -> Path:
    """Write what ``folder``'s model was trained with. ``chat`` is the resolved
    :class:`vlir.models.chat.ChatConfig` (its ``model_budget`` is the saved processor's, so it is
    left out); ``rollout`` the R-GRPO loop settings (SFT: none)."""
    import dataclasses

    chat_fields = {k: _jsonable(v) for k, v in dataclasses.asdict(chat).items() if k != "model_budget"}
    if isinstance(chat.crop_budget, PixelBudget):
        chat_fields["crop_budget"] = [chat.crop_budget.min_pixels, chat.crop_budget.max_pixels]
    data = {"trainer": trainer, "chat": chat_fields, "preset": preset,
            "rollout": {k: _jsonable(v) for k, v in (rollout or {}).items() if k in LOOP_KEYS},
            "image_pixels": [min_pixels or None, max_pixels or None]}
    path = Path(folder) / INFERENCE_FILE
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read(model: str | Path) -> dict[str, Any]:
    """The file's content, or {} where there is none (not a folder, an untrained checkpoint)."""
    path = Path(model) / INFERENCE_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def chat_settings(model: str | Path) -> dict[str, Any]:
    """:class:`vlir.models.chat.ChatConfig` keyword arguments the checkpoint was trained with."""
    from vlir.models.chat import ChatConfig

    chat = dict(read(model).get("chat") or {})
    known = {f for f in ChatConfig.__dataclass_fields__ if f != "model_budget"}
    chat = {k: v for k, v in chat.items() if k in known}
    if isinstance(chat.get("crop_budget"), list):
        chat["crop_budget"] = PixelBudget(*chat["crop_budget"])
    return chat


def preset(model: str | Path) -> str | None:
    """The rollout preset the checkpoint was trained with (None: not recorded)."""
    return read(model).get("preset")


def loop_settings(model: str | Path) -> dict[str, Any]:
    """The loop settings (:data:`LOOP_KEYS`) of the checkpoint's rollouts: defaults under the CLI's flags."""
    return {k: v for k, v in (read(model).get("rollout") or {}).items() if k in LOOP_KEYS}
