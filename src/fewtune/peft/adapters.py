"""LoRA and (IA)3 through peft: layers injected in place into the backbone's modules.

``inject_adapter_in_model`` works on any ``nn.Module``, so it needs no peft task type: the
masked LM, the causal LM and the classifier model keep their class, and the prompt head
still calls ``model.base_model`` itself. Only the injected weights stay trainable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from fewtune.errors import FewtuneError


def inject(model: nn.Module, peft_cfg: Mapping[str, Any]) -> None:
    from peft import IA3Config, LoraConfig, inject_adapter_in_model
    from peft.utils import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING,
        TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING,
    )

    name = peft_cfg["name"]
    model_type = model.config.model_type
    if name == "lora":
        targets = _targets(
            model, peft_cfg["target_modules"], TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
        )
        config = LoraConfig(
            r=peft_cfg["r"],
            lora_alpha=peft_cfg["alpha"],
            lora_dropout=peft_cfg["dropout"],
            target_modules=targets,
        )
    else:
        targets = _targets(
            model, peft_cfg["target_modules"], TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING
        )
        feedforward = peft_cfg["feedforward_modules"]
        if feedforward is None:
            # peft's feed-forward defaults belong to its default targets only.
            defaults = TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.get(model_type, [])
            feedforward = [] if peft_cfg["target_modules"] else defaults
        feedforward = _names(feedforward)
        outside = [f for f in feedforward if f not in targets]
        if outside:
            raise FewtuneError(
                f"peft.feedforward_modules {outside} must also be in peft.target_modules {targets}"
            )
        config = IA3Config(target_modules=targets, feedforward_modules=feedforward)
    try:
        inject_adapter_in_model(config, model)
    except ValueError as err:  # e.g. a layer type the method does not support
        raise FewtuneError(
            f"peft={name} does not fit {type(model).__name__}: {str(err).splitlines()[0]}"
        ) from None


def _names(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _targets(model: nn.Module, asked, defaults: Mapping[str, list[str]]) -> list[str]:
    """The asked module names, or peft's defaults for the model type; each must name a layer."""
    layers = _adaptable_layers(model)
    if asked is None:
        model_type = model.config.model_type
        if model_type not in defaults:
            raise FewtuneError(
                f"peft has no default target modules for model type '{model_type}'; set "
                f"peft.target_modules=[...] from its layers: {', '.join(sorted(set(layers.values())))}"
            )
        asked = defaults[model_type]
    targets = _names(asked)
    for target in targets:
        # peft's rule for a list of names: the module's name equals it or ends with '.' + it.
        if not any(full == target or full.endswith("." + target) for full in layers):
            raise FewtuneError(
                f"peft.target_modules: '{target}' is not a layer of this model; its layers that "
                f"peft can adapt are named: {', '.join(sorted(set(layers.values())))}"
            )
    return targets


def _adaptable_layers(model: nn.Module) -> dict[str, str]:
    """full name -> short name of the layers peft can adapt (linear, GPT-2's Conv1D, embeddings)."""
    from transformers.pytorch_utils import Conv1D

    return {
        full: full.rsplit(".", 1)[-1]
        for full, module in model.named_modules()
        if isinstance(module, (nn.Linear, Conv1D, nn.Embedding))
    }


def merge(model: nn.Module) -> int:
    """Fold each injected update into its layer's weight and put the plain layer back.

    The predictions stay the same (up to float rounding) and inference runs at the backbone's
    own cost. Returns the number of merged layers.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
            merged += 1
    return merged
