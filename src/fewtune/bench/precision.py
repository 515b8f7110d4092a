"""The autocast a plain loop needs to compute as Lightning's ``trainer.precision`` does."""

from __future__ import annotations

from contextlib import nullcontext

from fewtune.errors import FewtuneError


def autocast(precision, device: str):
    """bf16-mixed: bfloat16 autocast on the device; 32-true: none."""
    import torch

    precision = str(precision)
    if precision == "bf16-mixed":
        return torch.autocast(device, dtype=torch.bfloat16)
    if precision in ("32-true", "32"):
        return nullcontext()
    raise FewtuneError(
        f"the benchmark's plain loops run bf16-mixed or 32-true, not trainer.precision={precision}"
    )
