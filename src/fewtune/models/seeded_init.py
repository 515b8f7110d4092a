"""New weights from the seed alone, whatever the device: a new classifier head, peft's
adapters and soft prompts are drawn on the CPU, then moved.

The run builds its model before Lightning moves it to the accelerator, but what a new weight
gets would still depend on where and when it is drawn: a CUDA tensor draws from the GPU's
generator (another stream than the CPU's for the same seed), a default device set by other
code (``torch.set_default_device``) moves the draw there, and anything that drew from the CPU
generator before (another job's set-up, a library) shifts the stream. Inside ``drawn_on_cpu``
the CPU generator restarts from the seed and new tensors are made on the CPU, so the same seed
gives the same initial weights on any machine. The first draws after
``seed_everything(seed)`` are the same as before this existed: runs keep their numbers.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def drawn_on_cpu(seed: int):
    """New tensors on the CPU, drawn from the CPU generator restarted at ``seed``."""
    import torch

    with torch.device("cpu"):
        torch.default_generator.manual_seed(int(seed))
        yield
