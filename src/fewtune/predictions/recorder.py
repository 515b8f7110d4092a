"""The Lightning callback that keeps every dev and test example's prediction.

It reads what the module's ``validation_step`` / ``test_step`` return (the label logits after
demonstration averaging, calibration and early exit: what the metrics saw) and the batch's
example indices and labels. Dev predictions are kept from ``trainer.validate`` only, never from
the dev evaluations during ``fit``: train.py validates the tested weights once more for them.
Under DDP each process holds its share until the epoch ends; then all of them are gathered.
"""

from __future__ import annotations

import torch
from pytorch_lightning.callbacks import Callback

from fewtune.predictions.store import Predictions


class PredictionRecorder(Callback):
    def __init__(self) -> None:
        self.parts: dict[str, list[dict]] = {}
        self.done: dict[str, list[dict]] = {}

    # -- dev: only in trainer.validate (fit's evaluations pick the checkpoint; they are not kept)
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self._validating(trainer):
            self.parts["dev"] = []

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self._validating(trainer) and outputs is not None:
            self.parts["dev"].append(_part(pl_module, outputs, batch, batch_idx))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._validating(trainer):
            self.done["dev"] = _gather(trainer, self.parts.pop("dev", []))

    # -- test
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.parts["test"] = []

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if outputs is not None:
            self.parts["test"].append(_part(pl_module, outputs, batch, batch_idx))

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self.done["test"] = _gather(trainer, self.parts.pop("test", []))

    @staticmethod
    def _validating(trainer) -> bool:
        return trainer.state.fn == "validate" and not trainer.sanity_checking

    def predictions(self, split: str, meta: dict) -> Predictions | None:
        """The split's predictions (None if that phase did not run), ``meta`` from store.task_meta."""
        parts = self.done.get(split)
        if not parts:
            return None
        cat = {key: torch.cat([p[key] for p in parts]) for key in parts[0] if key != "batch"}
        batch = torch.cat([torch.full((len(p["index"]),), n) for n, p in enumerate(parts)])
        order = torch.arange(len(batch))
        columns = {key: value.numpy() for key, value in cat.items()}
        return Predictions.build(
            {**meta, "split": split}, batch=batch.numpy(), order=order.numpy(), **columns
        )


def _part(module, logits: torch.Tensor, batch: dict, batch_idx: int) -> dict:
    """One batch's rows, on the CPU, as the metrics saw them."""
    logits = logits.detach().float()
    part = {"index": batch["index"].cpu(), "gold": batch["labels"].cpu(), "batch": batch_idx}
    if module.regression:
        part["score"] = module.predictions(logits).cpu()
    else:
        part["pred"] = logits.argmax(-1).cpu()  # as the metrics read the logits
        part["probs"] = logits.softmax(-1).cpu()
    exits = getattr(module, "last_exit_layers", None)
    if exits is not None:
        part["exit_layer"] = exits.cpu()
    return part


def _gather(trainer, parts: list[dict]) -> list[dict]:
    """Every process's batches, process after process (without DDP: ``parts`` itself)."""
    if (
        trainer.world_size <= 1
        or not torch.distributed.is_available()
        or not torch.distributed.is_initialized()
    ):
        return parts
    everyone: list = [None] * trainer.world_size
    torch.distributed.all_gather_object(everyone, parts)
    return [part for rank_parts in everyone for part in rank_parts]
