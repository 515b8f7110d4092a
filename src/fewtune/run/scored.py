"""How many dev and test examples a run scored, so that a smoke run is never taken for a result.

``debug=fast`` and ``trainer.limit_test_batches`` score part of the test set; metrics.json
records ``scored`` (examples of the last dev evaluation and of the test, and the test set's size)
and ``test_complete``, which the table reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytorch_lightning as pl
import torch


class ScoredExamples(pl.Callback):
    def __init__(self) -> None:
        self.dev = 0
        self.test = 0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self.dev = 0  # the last evaluation's count: every dev evaluation scores the same examples

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if not trainer.sanity_checking:
            self.dev += len(batch["labels"])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.dev = _summed(trainer, pl_module, self.dev)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.test += len(batch["labels"])

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self.test = _summed(trainer, pl_module, self.test)

    def record(self, test_size: int) -> dict:
        return scored_record(self.dev, self.test, test_size)


def scored_record(dev: int, test: int, test_size: int) -> dict:
    """What metrics.json records of the examples scored (a method that evaluates outside
    Lightning's loops, PET, counts them itself)."""
    return {
        "scored": {"dev": dev, "test": test, "test_size": test_size},
        "test_complete": test >= test_size,
    }


def smoke_mark(results: dict) -> str:
    """The result line's note on a run that scored part of its test set ('' for all of it)."""
    scored = results.get("scored")
    if results.get("test_complete", True) or not scored:
        return ""
    return f" [smoke run: {scored['test']} of {scored['test_size']} test examples]"


def _summed(trainer, pl_module, count: int) -> int:
    """Over all processes: under DDP each one scores its share of the split."""
    return int(
        trainer.strategy.reduce(torch.tensor(count, device=pl_module.device), reduce_op="sum")
    )


def reached(items: Sequence, limit, batch_size: int, processes: int | None = 1) -> Sequence:
    """The items of a split that an evaluation cut to ``limit`` batches scores (Lightning's
    ``limit_val_batches`` / ``limit_test_batches``: a number of batches, or a fraction of them;
    None: all). Each of ``processes`` takes every processes-th item in order
    (run/distributed.eval_sampler), so its first batches lie in the split's first
    batches x batch_size x processes items; ``processes=None`` (not known): all."""
    if limit is None or processes is None or processes < 1:
        return items
    per_process = math.ceil(len(items) / (batch_size * processes))
    batches = limit if isinstance(limit, int) else int(float(limit) * per_process)
    return items[: batches * batch_size * processes]
