"""Whether a device computes in bfloat16 natively, which decides the default precision.

Where it does (GPUs from Ampere on; CPUs whose oneDNN has bf16 kernels: AVX-512 or AMX on x86,
BF16 on Arm), bf16 autocast makes training and evaluation faster. Where it does not, torch
emulates bfloat16 matrix products, far slower than float32 (e.g. on AVX2-only x86 CPUs);
float32 is then the fast choice.
"""

from __future__ import annotations


def cuda_named(accelerator: str) -> bool:
    """Whether ``accelerator`` asks for CUDA by name (Lightning takes "gpu" and "cuda")."""
    return str(accelerator) in ("gpu", "cuda")


def cuda_selected(accelerator: str) -> bool:
    """Lightning's choice for ``accelerator``: 'auto' picks the GPU where there is one."""
    import torch

    return cuda_named(accelerator) or (str(accelerator) == "auto" and torch.cuda.is_available())


def visible_gpus() -> int:
    """The CUDA GPUs torch can use here: 0 with torch's CPU build or without a driver."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_device(accelerator: str):
    """The device this process computes on once Lightning has set up: its CUDA GPU where the run
    selects CUDA (under DDP the one of its local rank), else the CPU. Work done before the
    Trainer starts (contextual calibration) runs there too, not on the host."""
    import os

    import torch

    gpus = visible_gpus() if cuda_selected(accelerator) else 0
    if not gpus:
        return torch.device("cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
    return torch.device("cuda", local_rank % gpus)


def bf16_native(accelerator: str) -> bool:
    import torch

    if cuda_selected(accelerator):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if str(accelerator) in ("cpu", "auto"):
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check and check())
    return False  # mps, tpu, ...: no claim; bf16-mixed can still be asked for by name


def fast_precision(accelerator: str) -> str:
    """bf16-mixed where the device computes in bfloat16 natively, else 32-true."""
    return "bf16-mixed" if bf16_native(accelerator) else "32-true"


def cpu_description() -> str:
    """The CPU's model name and whether it has bf16 kernels, for benchmark reports."""
    import platform
    from pathlib import Path

    info = Path("/proc/cpuinfo")  # Linux; elsewhere platform's less specific name
    lines = info.read_text().splitlines() if info.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    name = names[0] if names else platform.processor() or platform.machine()
    return f"{name}, bf16 kernels: {'yes' if bf16_native('cpu') else 'no'}"


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_MALLOC_ENV = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "GLIBC_TUNABLES",
)


def keep_freed_host_memory(setting: str = "keep") -> bool:
    """``host_memory: keep``: glibc serves allocations up to 1 GiB from its heap and keeps what is
    freed for the next step, as a GPU's caching allocator does, instead of returning it to the
    system and page-faulting it back. By default glibc maps large tensors (a step's gradients and
    activations) afresh and unmaps them when freed, and whether it does so switches with its
    history: the same training loop then ran in two modes, one ~1.5x slower (docs/performance.md).
    Linux with glibc only; a user's own MALLOC_* or GLIBC_TUNABLES settings win. True if applied."""
    import ctypes
    import os
    import platform
    import sys

    if setting not in ("keep", "release"):
        from fewtune.errors import FewtuneError

        raise FewtuneError(f"host_memory={setting!r} is not one of keep, release")
    if (
        setting != "keep"
        or not sys.platform.startswith("linux")
        or platform.libc_ver()[0] != "glibc"
    ):
        return False
    if any(name in os.environ for name in _GLIBC_MALLOC_ENV):
        return False
    libc = ctypes.CDLL("libc.so.6")
    mapped = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)  # up to 1 GiB from the heap, not mmap
    trimmed = libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # and kept there once freed
    return bool(mapped and trimmed)
