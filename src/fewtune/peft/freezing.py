"""BitFit and head-only tuning: no new weights, a chosen part of the model is trained.

The head is what the model applies after its transformer body (``split_lm``): the new
classifier of method=finetune (``classifier``, ``score``), or the LM head of method=prompt
(``cls``, ``lm_head``).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping
from typing import Any

from torch import nn

from fewtune.errors import FewtuneError
from fewtune.models.backbones import split_lm

log = logging.getLogger("fewtune")


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The head's own parameters: those it shares with the body (a tied output embedding) are left out."""
    body, head = split_lm(model)
    shared = {id(p) for p in body.parameters()}
    return [p for module in head for p in module.parameters() if id(p) not in shared]


def train_head(model: nn.Module) -> None:
    """A new classifier head starts random: it is trained (and stored) with every peft method."""
    for p in head_parameters(model):
        p.requires_grad_(True)


def bitfit(model: nn.Module, peft_cfg: Mapping[str, Any], head: str) -> None:
    """Every bias term trains (the LM head's output bias too), and the norms' scales if asked."""
    norms = set()
    if peft_cfg["include_norms"]:
        norms = {
            id(p)
            for m in model.modules()
            if "norm" in type(m).__name__.lower()
            for p in m.parameters()
        }
    biases = 0
    for name, p in model.named_parameters():
        is_bias = name.rsplit(".", 1)[-1] == "bias"
        biases += is_bias
        p.requires_grad_(is_bias or id(p) in norms)
    if head == "classifier":
        train_head(model)
        if not biases:
            log.warning(
                "peft=bitfit: this model has no bias terms, so only the classifier head trains"
            )
    elif not any(p.requires_grad for p in model.parameters()):
        raise FewtuneError(
            f"peft=bitfit: {type(model).__name__} has no bias terms (Llama-style models have none), so there "
            "is nothing to train; set peft.include_norms=true to train the norms' scales, or use peft=lora"
        )


def head_only(model: nn.Module, peft_cfg: Mapping[str, Any], head: str) -> None:
    """The classifier head, or the LM head's own weights; peft.trainable names other weights to train."""
    model.requires_grad_(False)
    patterns = peft_cfg["trainable"]
    if patterns:
        _train_matching(model, [patterns] if isinstance(patterns, str) else list(patterns))
    if head == "classifier":
        train_head(model)
        return
    if patterns:
        return
    chosen = head_parameters(model)
    if not chosen:
        raise FewtuneError(
            f"peft=head_only with method=prompt: the LM head of {type(model).__name__} is tied to its input "
            "embeddings and has no weights of its own; name the weights to train, e.g. "
            "peft.trainable='[model.norm.weight]', or use peft=lora"
        )
    for p in chosen:
        p.requires_grad_(True)


def _train_matching(model: nn.Module, patterns: list[str]) -> None:
    named = dict(model.named_parameters())
    for pattern in patterns:
        matched = fnmatch.filter(named, pattern)
        if not matched:
            example = next(iter(named))
            raise FewtuneError(
                f"peft.trainable: '{pattern}' matches no parameter of this model; names look like '{example}'"
            )
        for name in matched:
            named[name].requires_grad_(True)
