"""The one place a rollout engine is built: ``vlir infer``, ``vlir eval`` (shards, sources and
``--benchmark``) and R-GRPO all call :func:`build_engine` with a :class:`RolloutConfig`
(a preset plus overrides: :func:`rollout_config`), so a setting means the same everywhere.

Local backend: the checkpoint is loaded with the config's image budget (None: the checkpoint's),
or a model already in memory is wrapped (``loaded``: R-GRPO's policy). Served backend: the image
budget is the config's, else what the checkpoint folder's processor config states, else the
family's default; the family (image block, vision tokens) is the folder's, else Qwen2.5-VL's.
What a checkpoint was trained with (:mod:`vlir.rollout.trained`) is the default chat (instruction,
system, crop budget) of both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vlir.geometry import PixelBudget
from vlir.models.registry import default_family
from vlir.rollout.config import RolloutConfig


def rollout_config(preset: str = "vlir", *, crop_min_pixels: int | None = None,
                   crop_max_pixels: int | None = None, **settings: Any) -> RolloutConfig:
    """The ``preset`` with the non-None ``settings``; the crop bounds override the preset's crop
    budget one at a time (the CLI's ``--crop-min-pixels``/``--crop-max-pixels``)."""
    config = RolloutConfig.preset(preset, **settings)
    if crop_min_pixels is not None or crop_max_pixels is not None:
        base = config.crop_budget or default_family().crop()  # the half not given: the default's
        config = config.with_(crop_budget=PixelBudget(crop_min_pixels or base.min_pixels,
                                                      crop_max_pixels or base.max_pixels))
    return config


def build_engine(model: str | Path, config: RolloutConfig, *, device: str = "cpu", dtype: Any = None,
                 api_key_env: str = "OPENAI_API_KEY", loaded: tuple[Any, Any] | None = None,
                 chat_overrides: dict[str, Any] | None = None, client: Any = None):
    """A :class:`vlir.rollout.Rollout` (``config.engine == "local"``) or
    :class:`vlir.rollout.served.ServedRollout` (``"served"``) running ``config``.

    ``model`` is a checkpoint folder (local; served: the name the server knows unless
    ``config.served_model`` says otherwise). ``loaded`` is ``(model, processor)`` already in memory:
    the local backend runs it; the served one uses the processor to give each trajectory its
    images' tensors (R-GRPO trains on them). ``chat_overrides`` (e.g. ``{"instruction": ""}``)
    change the chat the checkpoint was trained with (:func:`vlir.rollout.trained.chat_settings`).
    Bad settings raise ValueError (FileNotFoundError for a missing checkpoint)."""
    from vlir.rollout import trained

    chat = {**trained.chat_settings(model), **(chat_overrides or {})}
    if config.engine == "served":
        return _recorded(_served(str(model), config, chat, api_key_env, client,
                                 loaded[1] if loaded is not None else None))
    from vlir.models import load_model
    from vlir.models.chat import ChatConfig
    from vlir.rollout.engine import Rollout

    if loaded is None:
        if not Path(model).is_dir():
            raise FileNotFoundError(f"--model {model} is not a checkpoint directory")
        loaded = load_model(model, dtype=dtype, device=device, min_pixels=config.min_pixels,
                            max_pixels=config.max_pixels)
    policy, processor = loaded
    if config.chat is None:
        config = config.with_(chat=ChatConfig.for_processor(processor, **chat))
    return _recorded(Rollout(policy, processor, config))


def _recorded(engine):
    """The engine with its chat's instruction among the settings recorded beside its outputs."""
    chat = getattr(engine, "chat_config", None) or engine.chat
    engine.settings["instruction"] = chat.instruction
    return engine


def _served(model: str, config: RolloutConfig, chat: dict[str, Any], api_key_env: str, client: Any,
            processor: Any = None):
    from vlir.models.chat import ChatConfig
    from vlir.models.registry import family_of
    from vlir.rollout.served import ServedRollout, checkpoint_budget

    folder = Path(model).is_dir()
    family = family_of(model) if folder and (Path(model) / "config.json").is_file() else default_family()
    base = (checkpoint_budget(model) if folder else None) or family.budget()
    budget = dataclasses.replace(base, min_pixels=config.min_pixels or base.min_pixels,
                                 max_pixels=config.max_pixels or base.max_pixels)
    if config.chat is not None:  # a trainer's chat: its processor's view is the space of the boxes
        budget = config.chat.model_budget
    else:
        config = config.with_(chat=ChatConfig(**{**chat, "model_budget": budget,
                                                 "crop_budget": family.crop(chat.get("crop_budget"))}))
    return ServedRollout(config.base_url, config.served_model or model, config, model_budget=budget,
                         api_key_env=api_key_env, family=family, client=client,
                         processor=processor)
