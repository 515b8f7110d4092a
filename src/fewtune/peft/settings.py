"""The checks of a ``peft`` config that need no weights: they fail a run before anything loads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fewtune.errors import FewtuneError

# peft=<name>: what conf/peft/ offers.
FROM_PEFT_ADAPTERS = ("lora", "ia3")  # layers injected into the backbone's modules
FROM_PEFT_PROMPTS = (
    "prompt_tuning",
    "prefix_tuning",
    "p_tuning",
)  # virtual tokens before the input
FREEZING = ("bitfit", "head_only")  # no new weights: a chosen part of the model is trained
BOTTLENECK = ("houlsby", "pfeiffer")  # the project's own adapters after sublayers (bottleneck.py)
NAMES = ("none", *FROM_PEFT_ADAPTERS, *FROM_PEFT_PROMPTS, *FREEZING, *BOTTLENECK)


def enabled(peft_cfg: Mapping[str, Any] | None) -> bool:
    """Whether a run trains only part of the model (and stores only that part)."""
    return bool(peft_cfg) and peft_cfg["name"] != "none"


def check(peft_cfg: Mapping[str, Any], method_cfg: Mapping[str, Any]) -> None:
    name = peft_cfg["name"]
    if name not in NAMES:
        raise FewtuneError(f"peft.name='{name}' is unknown; use one of {list(NAMES)}")
    if name == "none":
        return
    if not method_cfg["train"]:
        raise FewtuneError(
            f"method={method_cfg['name']} trains nothing, so peft={name} has nothing to tune; use peft=none"
        )
    if name == "lora":
        _positive_int(peft_cfg, "r", "the rank of the update")
        if not peft_cfg["alpha"] > 0:
            raise FewtuneError(
                f"peft.alpha={peft_cfg['alpha']}: LoRA's scale must be > 0 (e.g. peft.alpha=16)"
            )
        if not 0 <= peft_cfg["dropout"] < 1:
            raise FewtuneError(f"peft.dropout={peft_cfg['dropout']} must be in [0, 1)")
    if name in FROM_PEFT_PROMPTS:
        _positive_int(peft_cfg, "num_virtual_tokens", "the number of virtual tokens")
    if name == "prompt_tuning" and peft_cfg["init"] not in ("template", "random"):
        raise FewtuneError(f"peft.init='{peft_cfg['init']}' is unknown; use template or random")
    if name == "p_tuning":
        _positive_int(peft_cfg, "encoder_hidden_size", "the prompt encoder's width")
        if peft_cfg["encoder_reparameterization_type"] not in ("MLP", "LSTM"):
            raise FewtuneError(
                f"peft.encoder_reparameterization_type='{peft_cfg['encoder_reparameterization_type']}' "
                "is unknown; use MLP or LSTM"
            )
    if name == "prefix_tuning" and peft_cfg["prefix_projection"]:
        _positive_int(peft_cfg, "encoder_hidden_size", "the prefix MLP's width")
    if name in BOTTLENECK:
        _check_bottleneck(peft_cfg)
    if peft_cfg.get("merge") and name not in FROM_PEFT_ADAPTERS:
        raise FewtuneError(
            f"peft.merge=true needs peft=lora or ia3: peft={name} has no update to fold into the weights"
        )


def _check_bottleneck(peft_cfg: Mapping[str, Any]) -> None:
    from transformers.activations import ACT2FN

    if peft_cfg["bottleneck_size"] is not None:
        _positive_int(peft_cfg, "bottleneck_size", "the adapter's width")
    else:
        _positive_int(
            peft_cfg, "reduction_factor", "the hidden size's divisor giving the adapter's width"
        )
    if peft_cfg["non_linearity"] not in ACT2FN:
        raise FewtuneError(
            f"peft.non_linearity='{peft_cfg['non_linearity']}' is unknown; use one of transformers' "
            "activations, e.g. relu, gelu, swish, tanh"
        )


def _positive_int(peft_cfg: Mapping[str, Any], key: str, what: str) -> None:
    value = peft_cfg[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FewtuneError(f"peft.{key}={value}: {what} must be a whole number >= 1")
