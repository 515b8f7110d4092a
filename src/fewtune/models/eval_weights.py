"""Linear weights cast to the autocast dtype once for a whole test set, instead of per batch.

Under bf16 (or fp16) autocast every ``nn.Linear`` casts its float32 weight to bfloat16 again at
each forward call: a copy of the whole model per evaluation batch. Casting the weights once
gives bit-identical results (autocast would round the same weights the same way) and drops that
copy. Weights that an embedding shares (tied LM heads) stay float32: an embedding's output
must keep the dtype autocast leaves it in.
"""

from __future__ import annotations

import torch
from torch import nn

AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def cast_linear_weights(module: nn.Module, dtype: torch.dtype) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """Cast the Linear layers' own weights and biases to ``dtype`` in place; returns what
    ``restore_weights`` needs to put the float32 ones back."""
    shared = {id(p) for m in module.modules() if not isinstance(m, nn.Linear) for p in m.parameters(recurse=False)}
    saved = []
    for linear in (m for m in module.modules() if isinstance(m, nn.Linear)):
        for p in linear.parameters(recurse=False):
            if id(p) not in shared and p.dtype == torch.float32:
                saved.append((p, p.data))
                p.data = p.data.to(dtype)
    return saved


def restore_weights(saved: list[tuple[nn.Parameter, torch.Tensor]]) -> None:
    for p, original in saved:
        p.data = original
