"""Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2021), written in the project.

peft 0.21 has no sequential bottleneck adapter, and AdapterHub's ``adapters`` needs
transformers 4.x. An adapter is a small residual MLP, ``h + up(act(down(h)))``, applied to the
output ``h`` of a sublayer's output projection, before the layer's own residual connection and
norm:

- peft=houlsby: after the attention's output projection and the feed-forward's (two per layer);
- peft=pfeiffer: after the feed-forward's only (one per layer).

The up-projection starts at zero (as LoRA's B does), so until it trains the model computes
exactly what the backbone computes. Each adapter is a child (``bottleneck``) of the projection
it follows and runs in that projection's forward hook: the backbone's own module names stay as
they are, and the adapters' weights are the only new ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fewtune.errors import FewtuneError

# peft=<name> -> the sublayers whose output gets an adapter.
SUBLAYERS = {"houlsby": ("attention", "feedforward"), "pfeiffer": ("feedforward",)}
SETTING = {"attention": "attention_output", "feedforward": "feedforward_output"}

_BERT_LIKE = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "deberta-v2")
_LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2")
# model type -> the output projections of (attention, feed-forward), as paths inside each layer.
OUTPUT_PROJECTIONS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(_BERT_LIKE, ("attention.output.dense", "output.dense")),
    **dict.fromkeys(_LLAMA_LIKE, ("self_attn.o_proj", "mlp.down_proj")),
    "distilbert": ("attention.out_lin", "ffn.lin2"),
    "gpt2": ("attn.c_proj", "mlp.c_proj"),
}
ADAPTER_NAME = "bottleneck"


class BottleneckAdapter(nn.Module):
    """``h + up(act(down(h)))``: the identity until ``up`` trains away from zero."""

    def __init__(self, width: int, size: int, non_linearity: str):
        from transformers.activations import ACT2FN

        super().__init__()
        self.down = nn.Linear(width, size)
        self.act = ACT2FN[non_linearity]
        self.up = nn.Linear(size, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.act(self.down(hidden)))


def _run_adapter(module: nn.Module, args, output: torch.Tensor) -> torch.Tensor:
    # A module-level function that finds its adapter on the module: copies of the model
    # (deepcopy, pickling) keep each hook pointing at their own adapter.
    return getattr(module, ADAPTER_NAME)(output)


def insert(model: nn.Module, peft_cfg: Mapping[str, Any]) -> int:
    """Add an adapter after each chosen output projection of ``model``, in place; returns how
    many. Only the adapters are new, and they are left trainable (the caller froze the rest)."""
    name = peft_cfg["name"]
    projections = []
    for sublayer in SUBLAYERS[name]:
        path = _path(model, peft_cfg, sublayer)
        pattern = re.compile(r"(?:.*\.)?\d+\." + re.escape(path))
        found = [(full, m) for full, m in model.named_modules() if pattern.fullmatch(full)]
        if not found:
            raise FewtuneError(
                f"peft={name}: no module named '{path}' inside the layers of "
                f"{type(model).__name__} (peft.{SETTING[sublayer]}); its layers' linear modules "
                f"are: {', '.join(_layer_linears(model))}"
            )
        projections += found
    for full, module in projections:
        if hasattr(module, ADAPTER_NAME):
            raise FewtuneError(
                f"peft={name}: {full} was chosen twice; give the two sublayers different modules"
            )
        width = _width(name, full, module)
        adapter = BottleneckAdapter(width, _size(peft_cfg, width), peft_cfg["non_linearity"])
        weight = module.weight
        module.add_module(ADAPTER_NAME, adapter.to(device=weight.device, dtype=weight.dtype))
        module.register_forward_hook(_run_adapter)
    return len(projections)


def _path(model: nn.Module, peft_cfg: Mapping[str, Any], sublayer: str) -> str:
    """The output projection of ``sublayer`` inside a layer: the setting, or the family's."""
    asked = peft_cfg.get(SETTING[sublayer])
    if asked:
        return asked
    model_type = model.config.model_type
    if model_type not in OUTPUT_PROJECTIONS:
        raise FewtuneError(
            f"peft={peft_cfg['name']} knows no default sublayers for model type '{model_type}'; "
            f"set peft.{SETTING[sublayer]}=<path inside a layer> to one of its layers' linear "
            f"modules: {', '.join(_layer_linears(model))}"
        )
    return OUTPUT_PROJECTIONS[model_type][SUBLAYERS["houlsby"].index(sublayer)]


def _width(name: str, full: str, module: nn.Module) -> int:
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, Conv1D):  # GPT-2's transposed linear layer
        return module.nf
    raise FewtuneError(
        f"peft={name}: an adapter follows a linear layer (a sublayer's output projection); "
        f"{full} is a {type(module).__name__}"
    )


def _size(peft_cfg: Mapping[str, Any], width: int) -> int:
    return peft_cfg.get("bottleneck_size") or max(1, width // peft_cfg["reduction_factor"])


def _layer_linears(model: nn.Module) -> list[str]:
    """The paths, inside a numbered layer, of the first layer's linear modules."""
    from transformers.pytorch_utils import Conv1D

    paths = []
    for full, module in model.named_modules():
        match = re.fullmatch(r"(?:.*\.)?0\.(.+)", full)
        if match and isinstance(module, (nn.Linear, Conv1D)) and match.group(1) not in paths:
            paths.append(match.group(1))
    return paths
