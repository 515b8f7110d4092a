"""Prompt tuning, prefix tuning and P-tuning through peft, for both heads and both families.

peft's prompt-learning models put their virtual tokens in front of the input inside their
``forward``, which is chosen by a task type, and peft has none for masked LMs. Both heads
read the hidden states of the transformer body (``model.base_model``), so only the body is
wrapped, as peft's FEATURE_EXTRACTION model, and put back in the model in its place.

Prompt tuning and P-tuning add positions in front of the real tokens; the wrapper drops them
from the body's output, so that everything downstream indexes the real tokens as before: the
prompt head's slot, BERT's [CLS] pooling, a decoder classifier's last non-pad token. Prefix
tuning adds keys and values only, so the output already has the real positions alone.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fewtune.errors import FewtuneError


class VirtualTokenBody(nn.Module):
    """A transformer body behind peft's virtual tokens, whose output has the real positions only."""

    def __init__(self, peft_body: nn.Module, added_positions: int):
        super().__init__()
        self.peft_body = peft_body
        self.added_positions = added_positions

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        # The classifier models pass their unused inputs as None (cache=None among them, which
        # must not compete with peft's prefix): only what is given goes on.
        kwargs = {key: value for key, value in kwargs.items() if value is not None}
        out = self.peft_body(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if self.added_positions:
            out.last_hidden_state = out.last_hidden_state[:, self.added_positions :]
            # BERT-style bodies pool their first position, which was a virtual token: pool [CLS].
            pooler = getattr(self.peft_body.get_base_model(), "pooler", None)
            if getattr(out, "pooler_output", None) is not None and pooler is not None:
                out.pooler_output = pooler(out.last_hidden_state)
        return out


def wrap_body(
    model: nn.Module, peft_cfg: Mapping[str, Any], tokenizer, init_text: str, max_length: int
) -> None:
    """Put peft's soft prompt (or prefix) in front of ``model``'s body, in place; only it trains."""
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model

    name = peft_cfg["name"]
    body = model.base_model
    count = peft_cfg["num_virtual_tokens"]
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and count + max_length > positions:
        raise FewtuneError(
            f"peft.num_virtual_tokens={count} plus task.max_length={max_length} exceed the {positions} "
            "positions of this model; lower one of them"
        )
    task_type = "FEATURE_EXTRACTION"
    # The virtual tokens live in the input embedding space, which may be narrower than the
    # hidden size (ALBERT); peft would assume the hidden size.
    token_dim = body.get_input_embeddings().embedding_dim
    if name == "prefix_tuning":
        if not _takes_cache(body):
            raise FewtuneError(
                f"peft=prefix_tuning feeds its prefix through the key/value cache, which "
                f"{type(body).__name__} does not take; use peft=prompt_tuning or p_tuning with this model"
            )
        if "cache" in inspect.signature(body.forward).parameters:
            body.register_forward_pre_hook(_prefix_as_cache, with_kwargs=True)
        config = PrefixTuningConfig(
            task_type=task_type,
            num_virtual_tokens=count,
            prefix_projection=peft_cfg["prefix_projection"],
            encoder_hidden_size=peft_cfg["encoder_hidden_size"],
        )
        added = 0
    elif name == "prompt_tuning":
        config = PromptTuningConfig(
            task_type=task_type, num_virtual_tokens=count, token_dim=token_dim, **_shape(model)
        )
        added = count
    else:
        config = PromptEncoderConfig(
            task_type=task_type,
            num_virtual_tokens=count,
            token_dim=token_dim,
            **_shape(model),
            encoder_hidden_size=peft_cfg["encoder_hidden_size"],
            encoder_reparameterization_type=peft_cfg["encoder_reparameterization_type"],
        )
        added = count
    word_embeddings = body.get_input_embeddings()
    try:
        peft_body = get_peft_model(body, config)
    except ValueError as err:
        raise FewtuneError(
            f"peft={name} does not fit {type(body).__name__}: {str(err).splitlines()[0]}"
        ) from None
    if name == "prompt_tuning" and peft_cfg["init"] == "template":
        _start_from_text(
            peft_body.prompt_encoder["default"].embedding, word_embeddings, tokenizer, init_text
        )
    setattr(model, model.base_model_prefix, VirtualTokenBody(peft_body, added))


def _prefix_as_cache(module, args, kwargs):
    # peft 0.21 hands the prefix over as past_key_values, which transformers 5 renamed to cache
    # (the old name goes in 5.40, after which the prefix would be silently ignored).
    if "past_key_values" in kwargs:
        kwargs["cache"] = kwargs.pop("past_key_values")
    return args, kwargs


def _shape(model: nn.Module) -> dict[str, int]:
    """Layers and heads, which peft asks for even where only prefix tuning uses them, under the
    names DistilBERT (n_layers, n_heads) and GPT-2 (n_layer, n_head) give them too."""
    config = model.config

    def first(*names):
        return next(
            (getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)), None
        )

    found = {
        "num_layers": first("num_hidden_layers", "n_layers", "n_layer", "num_layers"),
        "num_attention_heads": first("num_attention_heads", "n_heads", "n_head"),
    }
    return {key: value for key, value in found.items() if value is not None}


def _takes_cache(body: nn.Module) -> bool:
    params = inspect.signature(body.forward).parameters
    return "cache" in params or "past_key_values" in params


def _start_from_text(
    prompt: nn.Embedding, word_embeddings: nn.Embedding, tokenizer, text: str
) -> None:
    """The virtual tokens start as the embeddings of ``text``'s tokens, repeated to fill them.

    peft's own text initialisation loads the tokenizer again by name and adds its special
    tokens ([CLS] ... [SEP]) to the text; this uses the run's tokenizer and the words alone.
    """
    ids = tokenizer.encode(text, add_special_tokens=False) if text.strip() else []
    if not ids:
        raise FewtuneError(
            "peft.init=template: the task's template has no words of its own to start the soft prompt "
            "from; use peft.init=random"
        )
    count = prompt.num_embeddings
    ids = (ids * math.ceil(count / len(ids)))[:count]
    with torch.no_grad():
        prompt.weight.copy_(
            word_embeddings.weight[torch.tensor(ids, device=word_embeddings.weight.device)]
        )
