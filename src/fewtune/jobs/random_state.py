"""The random state of torch, numpy and Python in a job's resumable checkpoint, so that a job
resumed after a crash, a preemption or a requeue draws the same dropout masks and batch orders as
one that ran through: its final metrics equal an uninterrupted run's of the same seed.

Lightning keeps a callback's ``state_dict`` in every checkpoint and hands it back to
``load_state_dict`` when ``fit`` resumes. The state is set at ``on_train_start``, not at once:
in between, Lightning creates a training DataLoader iterator that the uninterrupted run did not
(one draw); from ``on_train_start`` on, a job resumed from a checkpoint at the end of an epoch
draws what the uninterrupted run drew after it. Stored as tensors and lists (not numpy arrays),
so that a ``weights_only`` load reads them too.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning.callbacks import Callback


class RandomState(Callback):
    def __init__(self) -> None:
        self._restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
        version, python_state, gauss_next = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [
                kind,
                torch.from_numpy(keys.astype(np.int64)),
                position,
                has_gauss,
                cached_gauss,
            ],
            "python": [version, list(python_state), gauss_next],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restore = state_dict

    def on_train_start(self, trainer, pl_module) -> None:
        if self._restore is not None:
            _set(self._restore)
            self._restore = None


def _set(state_dict: dict[str, Any]) -> None:
    torch.set_rng_state(state_dict["torch"])
    if state_dict["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state_dict["cuda"])
    kind, keys, position, has_gauss, cached_gauss = state_dict["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
    version, python_state, gauss_next = state_dict["python"]
    random.setstate((version, tuple(python_state), gauss_next))
