"""Choices whose fastest value depends on the device: whether training batches are packed.

``pack_training: auto`` packs on the CPU and pads on a GPU. On the CPU compute dominates a
step and packing removes the padding's share of it (docs/performance.md has the measurement).
On a GPU a batch of 8 short sentences costs little to pad, while packing costs host-device
syncs (boolean indexing, the packed-sequence check in transformers' mask) and a 4D mask the
fastest attention kernels do not take; that default is a hypothesis until a GPU measures it
(``python -m fewtune.bench.gpu_check`` prints both).
"""

from __future__ import annotations

from fewtune.errors import FewtuneError

PACK_SETTINGS = ("auto", True, False)


def pack_setting(value) -> bool | str:
    """``pack_training`` as given (true, false, auto; Hydra may pass the strings), checked."""
    if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
        value = {"auto": "auto", "true": True, "false": False}[value.lower()]
    if value not in PACK_SETTINGS or (value != "auto" and not isinstance(value, bool)):
        raise FewtuneError(f"pack_training={value!r} is not one of auto, true, false")
    return value


def packs_on(setting: bool | str, device_type: str) -> bool:
    """Whether training batches are packed on a device of this type ('cpu', 'cuda', ...)."""
    setting = pack_setting(setting)
    return device_type == "cpu" if setting == "auto" else setting
