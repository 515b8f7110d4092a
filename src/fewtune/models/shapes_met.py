"""How many distinct input shapes a run's body computed, per phase, for metrics.json.

Each new shape costs a backend something once (a cuDNN plan, a ``torch.compile`` graph, a
kernel choice); the length ladder (data/lengths.py) keeps their number small. Counted where
every route passes, the input embedding: padded and packed batches, early exit's layer by layer
run, several-token label words. The packing probe (eval mode inside a training step) is left out.
"""

from __future__ import annotations

import pytorch_lightning as pl


class ShapeLog:
    """The input shapes a model's embedding sees while a phase is set (``phase``), by phase."""

    def __init__(self):
        self.shapes: dict[str, set[tuple[int, ...]]] = {"train": set(), "eval": set()}
        self.last: tuple[int, ...] | None = None  # the latest shape counted
        self.phase: str | None = None
        self._hook = None
        self._model = None

    def attach(self, model) -> None:
        embeddings = input_embeddings(model)
        if self._hook is None and embeddings is not None:
            self._model = model
            self._hook = embeddings.register_forward_hook(self._count)

    def detach(self) -> None:
        # the backbone may serve the next job of a multirun: leave no hook on it
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _count(self, module, args, output):
        phase = self.phase
        if phase is not None and args and self._model.training == (phase == "train"):
            self.last = tuple(args[0].shape)
            self.shapes[phase].add(self.last)

    def record(self) -> dict[str, int]:
        return {"train_shapes": len(self.shapes["train"]), "eval_shapes": len(self.shapes["eval"])}


def input_embeddings(model):
    """The model's token embedding; for a body wrapped by peft's soft prompts (which transformers'
    ``get_input_embeddings`` does not see through), the embedding of the vocabulary's size."""
    try:
        return model.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        from torch import nn

        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        found = (
            m for m in model.modules() if isinstance(m, nn.Embedding) and m.num_embeddings == vocab
        )
        return next(found, None)


class ShapesMet(pl.Callback):
    """A ``ShapeLog`` on the module's model, its phase set around every batch."""

    def __init__(self):
        self.shape_log = ShapeLog()

    def record(self) -> dict[str, int]:
        return self.shape_log.record()

    def setup(self, trainer, pl_module, stage):
        self.shape_log.attach(pl_module.model)

    def teardown(self, trainer, pl_module, stage):
        self.shape_log.detach()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.shape_log.phase = "train"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.shape_log.phase = None

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.shape_log.phase = "eval"

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        self.shape_log.phase = None

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.shape_log.phase = "eval"

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.shape_log.phase = None
