"""Loading a pre-trained backbone: a hub id, a local folder or a packaged offline model.

The model family decides the LM head: masked LMs (BERT, RoBERTa, ALBERT, DeBERTa, ELECTRA
generator, ...) fill a [MASK] slot; causal LMs (GPT-2, Llama, Qwen, SmolLM, ...) predict the
label word as the next token. Either can also get a new classifier head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fewtune.errors import FewtuneError
from fewtune.models import packaged

if TYPE_CHECKING:
    from torch import nn

FAMILIES = ("masked", "causal")
OFFLINE_HINT = "offline backbones that work here: model=smollm2-135m (prompt, finetune), model=minilm-l6 (finetune)"


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    path: str  # hub id or local folder
    family: str  # masked | causal
    lm_head: bool  # whether the checkpoint has a trained LM head
    local: bool
    dtype: str = "float32"


def resolve(model_cfg: Mapping[str, Any], cache_dir: str | Path) -> BackboneSpec:
    """Turn a model config into a concrete path and family, without loading weights."""
    source = model_cfg.get("packaged")
    if source == "smollm2":
        path = packaged.smollm2_path(cache_dir)
    elif source == "minilm":
        path = packaged.minilm_path()
    elif source is None:
        if not model_cfg.get("path"):
            raise FewtuneError(
                "model.path is empty: give a Hugging Face model id or a local folder"
            )
        path = model_cfg["path"]
    else:
        raise FewtuneError(f"model.packaged='{source}' is unknown; use smollm2, minilm or null")
    local = Path(path).is_dir()
    family = model_cfg.get("family") or "auto"
    if family == "auto":
        family = detect_family(_load_config(str(path), local))
    if family not in FAMILIES:
        raise FewtuneError(f"model.family='{family}' is not one of {list(FAMILIES)} or 'auto'")
    return BackboneSpec(
        name=model_cfg.get("name") or str(path),
        path=str(path),
        family=family,
        lm_head=bool(model_cfg.get("lm_head", True)),
        local=local,
        dtype=model_cfg.get("dtype", "float32"),
    )


def detect_family(config) -> str:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    for arch in config.architectures or []:
        if arch.endswith("ForMaskedLM"):
            return "masked"
        if arch.endswith(("ForCausalLM", "LMHeadModel")):
            return "causal"
    # BERT-like types also have a causal class, so the masked mapping is asked first.
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "masked"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    raise FewtuneError(
        f"cannot tell whether model type '{config.model_type}' is a masked or a causal LM; set model.family"
    )


def hub_call(fn, path: str, local: bool, **kwargs):
    """Call a from_pretrained and turn a hub failure into one clear line."""
    try:
        return fn(path, local_files_only=local, **kwargs)
    except OSError as err:
        if local:
            raise FewtuneError(
                f"could not load the model in {path}: {str(err).splitlines()[0]}"
            ) from None
        raise FewtuneError(
            f"could not load '{path}' from the Hugging Face hub (the hub is unreachable or the id is "
            f"unknown); {OFFLINE_HINT}"
        ) from None


def _load_config(path: str, local: bool):
    from transformers import AutoConfig

    return hub_call(AutoConfig.from_pretrained, path, local)


def load_tokenizer(spec: BackboneSpec):
    from transformers import AutoTokenizer

    tokenizer = hub_call(AutoTokenizer.from_pretrained, spec.path, spec.local)
    if tokenizer.pad_token_id is None:
        # GPT-2 style tokenizers have no pad token; padding is masked out, so any id works.
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def require_lm_head(spec: BackboneSpec) -> None:
    """Prompting scores label words with the LM head: refuse a checkpoint without a trained one."""
    if not spec.lm_head:
        raise FewtuneError(
            f"model '{spec.name}' has no trained LM head, so it cannot score label words "
            f"(method=prompt/zeroshot); use it with method=finetune, or pick a model with an LM head"
        )


# The LM-head backbone of the last job and a copy of its pre-trained weights: the jobs of a
# multirun run in one process (Hydra's basic launcher), so the next job that asks for the
# same backbone gets it back with its weights reset instead of loading it again.
_reusable: dict[tuple, tuple] = {}


def load_model(
    spec: BackboneSpec,
    head: str,
    num_labels: int = 2,
    pad_token_id: int | None = None,
    reuse: bool = True,
):
    """``head='lm'``: the pre-trained LM head; ``head='classifier'``: a new classification head;
    ``head='body'``: no head.

    ``reuse=False`` gives an LM-head model of the caller's own, neither taken from nor kept in
    the reuse cache: peft changes a model in place (injected layers, a wrapped body).
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    dtype = getattr(torch, spec.dtype)
    if head == "lm":
        require_lm_head(spec)
        key = (spec.path, spec.family, spec.dtype)
        if reuse and key in _reusable:
            model, pristine = _reusable[key]
            model.load_state_dict(pristine)
            model.requires_grad_(True).zero_grad(set_to_none=True)
            return model
        cls = AutoModelForMaskedLM if spec.family == "masked" else AutoModelForCausalLM
        model = hub_call(cls.from_pretrained, spec.path, spec.local, dtype=dtype)
        if reuse:
            _reusable.clear()  # one backbone at a time: a grid over models must not pile them up
            _reusable[key] = (
                model,
                {name: t.detach().clone() for name, t in model.state_dict().items()},
            )
        return model
    if head == "classifier":
        model = hub_call(
            AutoModelForSequenceClassification.from_pretrained,
            spec.path,
            spec.local,
            dtype=dtype,
            num_labels=num_labels,
        )
        if pad_token_id is not None:
            # Decoder classifiers pool the last token that is not the config's pad id: it must be
            # the id batches are padded with (the tokenizer's), whatever the checkpoint says.
            # SmolLM2 converted from its GGUF by transformers 5.17 pads with 1 and says 2: padded
            # dev and test batches then pooled a padding position (docs/performance.md).
            model.config.pad_token_id = pad_token_id
        return model
    if head == "body":  # the transformer body alone, no head (SetFit's sentence encoder)
        from transformers import AutoModel

        return hub_call(AutoModel.from_pretrained, spec.path, spec.local, dtype=dtype)
    raise FewtuneError(f"head '{head}' is unknown; use 'lm', 'classifier' or 'body'")


def split_lm(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    """(the transformer body, the head modules applied to its output in order).

    transformers' *ForMaskedLM / *ForCausalLM hold the body under ``base_model_prefix``
    and the head in the other children: ``lm_head`` (RoBERTa, GPT-2, Llama), ``cls``
    (BERT), ``predictions`` (ALBERT), ``generator_predictions`` + ``generator_lm_head``
    (ELECTRA), applied in the order they are registered.
    """
    body = model.base_model
    head = [child for child in model.children() if child is not body]
    return body, head
