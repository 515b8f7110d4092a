"""Parameter-efficient tuning, the ``peft`` config group (conf/peft/): a method freezes the
backbone and trains a small set of weights, with either head (method=prompt or finetune).

- settings.py: the checks that need no weights (run first);
- adapters.py: LoRA and (IA)3 through peft, injected into the backbone's layers; merging;
- soft_prompts.py: prompt tuning, prefix tuning and P-tuning through peft, before the body;
- freezing.py: BitFit and head-only tuning;
- bottleneck.py: Houlsby and Pfeiffer bottleneck adapters, the project's own, after the sublayers;
- storage.py: the trained weights a run keeps, and loading them back.

A new classifier head (method=finetune) always trains and is stored with the method's weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import nn

from fewtune.peft.settings import BOTTLENECK, FROM_PEFT_ADAPTERS, FROM_PEFT_PROMPTS, check, enabled
from fewtune.peft.storage import TASK_WEIGHTS_FILE, keep_task_weights, load_task_weights

__all__ = [
    "TASK_WEIGHTS_FILE",
    "apply",
    "check",
    "enabled",
    "keep_task_weights",
    "load_task_weights",
    "merge_if_asked",
]

log = logging.getLogger("fewtune")


def apply(
    peft_cfg: Mapping[str, Any],
    model: nn.Module,
    head: str,
    *,
    tokenizer,
    template: str,
    max_length: int,
) -> nn.Module:
    """Make ``model`` (in place) train only what ``peft_cfg`` says; ``head`` is 'lm' or 'classifier'.

    ``template`` is the task's template text for the model's family: prompt tuning may start
    from its words.
    """
    from fewtune.peft import adapters, bottleneck, freezing, soft_prompts

    name = peft_cfg["name"]
    if name == "none":
        return model
    if name == "bitfit":
        freezing.bitfit(model, peft_cfg, head)
    elif name == "head_only":
        freezing.head_only(model, peft_cfg, head)
    else:
        model.requires_grad_(False)  # peft freezes what it wraps; the LM head is outside the body
        if name in BOTTLENECK:
            bottleneck.insert(model, peft_cfg)
        elif name in FROM_PEFT_ADAPTERS:
            adapters.inject(model, peft_cfg)
        elif name in FROM_PEFT_PROMPTS:
            soft_prompts.wrap_body(
                model, peft_cfg, tokenizer, _template_words(template), max_length
            )
        if head == "classifier":
            freezing.train_head(model)
    return model


def merge_if_asked(model: nn.Module, peft_cfg: Mapping[str, Any]) -> None:
    """peft.merge=true: fold the trained LoRA / (IA)3 updates into the backbone for inference."""
    from fewtune.peft import adapters

    if peft_cfg.get("merge"):
        count = adapters.merge(model)
        log.info("peft.merge: folded %d %s layers into the backbone", count, peft_cfg["name"])


def _template_words(template: str) -> str:
    from fewtune.data.prompts import Template

    return (
        " ".join(p.value for p in Template(template).pieces if p.kind == "text") if template else ""
    )
