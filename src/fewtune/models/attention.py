"""Which scaled-dot-product-attention kernels may run: the ``sdpa_backends`` setting, held by
the module around its training, dev and test steps (models/base.py).

torch picks an SDPA kernel per call among those allowed (``torch.nn.attention.sdpa_kernel``).
The setting is ``auto`` (below), ``default`` (torch's own choice, untouched) or a list of
``flash``, ``efficient``, ``cudnn``, ``math``.

``auto``, per device and phase:
- CUDA: flash, efficient, math; cuDNN attention left out. On recent torch and cuDNN, bf16
  SDPA on Hopper GPUs can be routed to cuDNN, which builds an execution plan for every new shape
  (reported at tens to hundreds of ms each); that this is what made fewtune's GPU steps slow is
  a hypothesis until a GPU measures it (``python -m fewtune.bench.gpu_check`` times both).
- CPU: the math kernel for training steps, torch's choice (its flash kernel first) for
  evaluation: under bf16 autocast the CPU flash kernel's backward pass was 2-4x slower than the
  math kernel's, while its forward pass was faster (docs/performance.md has the measurement).
"""

from __future__ import annotations

from contextlib import nullcontext

from omegaconf import ListConfig

from fewtune.errors import FewtuneError

NAMES = ("flash", "efficient", "cudnn", "math")
# (device type, phase) -> the kernels auto allows; None: torch's own choice
AUTO = {
    ("cuda", "train"): ("flash", "efficient", "math"),
    ("cuda", "eval"): ("flash", "efficient", "math"),
    ("cpu", "train"): ("math",),
    ("cpu", "eval"): None,
}


def check(setting) -> str | tuple[str, ...]:
    """The setting as ``auto``, ``default`` or a tuple of kernel names; a clear error otherwise."""
    if isinstance(setting, str) and setting in ("auto", "default"):
        return setting
    names = tuple(setting) if isinstance(setting, (list, tuple, ListConfig)) else (setting,)
    unknown = [name for name in names if name not in NAMES]
    if unknown or not names:
        raise FewtuneError(
            f"sdpa_backends={setting!r}: use auto, default or a list of {', '.join(NAMES)} (e.g. [flash,math])"
        )
    return names


def allowed(setting, device_type: str, phase: str) -> tuple[str, ...] | None:
    """The kernels allowed on this device in this phase ('train' or 'eval'); None: torch's choice."""
    setting = check(setting)
    if setting == "default":
        return None
    if setting == "auto":
        return AUTO.get((device_type, phase))  # other devices (mps, ...): torch's choice
    return setting


def kernels(setting, device_type: str, phase: str):
    """A context in which SDPA uses only the allowed kernels."""
    names = allowed(setting, device_type, phase)
    if names is None:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    by_name = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
    return sdpa_kernel([by_name[name] for name in names])
