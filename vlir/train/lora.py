"""LoRA for both trainers, through ``peft`` (config key ``lora``; empty: full fine-tuning).

``lora: {r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}``
injects LoRA adapters into the language model's linear layers of those names (the vision tower
and merger stay frozen, as the paper's SFT keeps them) and freezes every other weight. The
adapters live *inside* the model's own modules (``peft.get_peft_model`` injects them in place), so
the trainers, the rollout engine and the R-GRPO loss and masks see the same model class and
attributes as without LoRA: nothing else changes.

Checkpoints: ``output_dir`` holds the **merged** model (base + B·A·alpha/r folded into each
weight) in ``save_pretrained`` layout, so ``vlir infer``/``eval`` and R-GRPO load it like any
checkpoint; ``output_dir/adapter/`` holds the adapter alone (``adapter_config.json`` +
``adapter_model.safetensors``), loadable with ``peft.PeftModel.from_pretrained(base, path)``.
DeepSpeed state under ``checkpoints/`` keeps the unmerged weights for ``resume``. ZeRO-3 is not
supported with LoRA yet (refused at setup).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
KEYS = ("r", "alpha", "dropout", "target_modules")
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_CONFIG_ATTR = "_vlir_lora_config"  # the LoraConfig kept on the model, for saving the adapter


def problems(lora: Any) -> list[str]:
    """What is wrong with a config's ``lora`` mapping (``{}``: LoRA off)."""
    if not isinstance(lora, dict):
        return [f"lora must be a mapping of {', '.join(KEYS)}, got {lora!r}"]
    out = [f"lora.{k}: unknown key (known: {', '.join(KEYS)})" for k in lora if k not in KEYS]
    if lora and not (isinstance(lora.get("r", 8), int) and lora.get("r", 8) >= 1):
        out.append(f"lora.r must be an integer >= 1, got {lora.get('r')!r}")
    if lora and not 0 <= float(lora.get("dropout", 0.0)) < 1:
        out.append(f"lora.dropout must be in [0, 1), got {lora.get('dropout')!r}")
    targets = lora.get("target_modules", DEFAULT_TARGETS)
    if lora and (not targets or not all(isinstance(t, str) and re.fullmatch(r"\w+", t) for t in targets)):
        out.append(f"lora.target_modules must be a list of module names (q_proj, ...), got {targets!r}")
    return out


def lora_config(lora: dict[str, Any]):
    """The ``peft.LoraConfig``: the named linear layers of the language model only."""
    from peft import LoraConfig

    names = "|".join(lora.get("target_modules", DEFAULT_TARGETS))
    r = int(lora.get("r", 8))
    return LoraConfig(r=r, lora_alpha=float(lora.get("alpha", 2 * r)), lora_dropout=float(lora.get("dropout", 0.0)),
                      target_modules=rf".*language_model\..*\.(?:{names})", bias="none")


def apply(model: Any, lora: dict[str, Any], zero_stage: int = 0) -> Any:
    """Inject the adapters (no-op for an empty ``lora``); returns the same model object, with only
    the adapters trainable."""
    if not lora:
        return model
    if zero_stage == 3:
        raise ValueError("lora with ZeRO-3 is not supported yet: use a ZeRO-0/1/2 DeepSpeed JSON "
                         "(deepspeed/zero2.json)")
    from peft import get_peft_model

    config = lora_config(lora)
    peft_model = get_peft_model(model, config)
    base = peft_model.get_base_model()  # the original object, adapters injected in place
    for name, param in base.named_parameters():
        param.requires_grad_(".lora_" in name)
    setattr(base, _CONFIG_ATTR, config)
    layers = sum(1 for _ in _lora_layers(base))
    if not layers:
        raise ValueError(f"lora.target_modules {lora.get('target_modules', DEFAULT_TARGETS)} matched no "
                         "linear layer of the language model")
    log.info("LoRA: r=%d alpha=%s dropout=%s on %d layers", config.r, config.lora_alpha, config.lora_dropout, layers)
    return base


def _lora_layers(model: Any):
    from peft.tuners.lora import Linear

    return ((name, m) for name, m in model.named_modules() if isinstance(m, Linear))


def is_lora(model: Any) -> bool:
    return getattr(model, _CONFIG_ATTR, None) is not None


def merged_state_dict(model: Any, state_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model's weights with each adapter folded in, under the plain model's keys
    (``...q_proj.weight``): what ``save_pretrained`` writes as an ordinary checkpoint. The model
    itself is not changed (no merge/unmerge round trip in the weights being trained)."""
    state = dict(state_dict if state_dict is not None else model.state_dict())
    for name, layer in _lora_layers(model):
        for kind in ("weight", "bias"):
            key = f"{name}.base_layer.{kind}"
            if key in state:
                value = state.pop(key)
                if kind == "weight":
                    value = value + layer.get_delta_weight("default").to(value.dtype)
                state[f"{name}.{kind}"] = value.detach()
    return {k: v for k, v in state.items() if ".lora_" not in k}


def save_adapter(model: Any, out: Path) -> Path:
    """``out/adapter``: the adapter weights and config, as ``PeftModel.from_pretrained`` reads them."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = Path(out) / ADAPTER_DIR
    target.mkdir(parents=True, exist_ok=True)
    getattr(model, _CONFIG_ATTR).save_pretrained(target)
    # PeftModel's own key convention (what its from_pretrained matches): base_model.model.<name>
    weights = {f"base_model.model.{k}": v.detach().contiguous().cpu()
               for k, v in get_peft_model_state_dict(model).items()}
    save_file(weights, target / "adapter_model.safetensors")
    return target
