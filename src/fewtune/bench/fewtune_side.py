"""fewtune's side of the benchmark: the module trained and tested by Lightning's trainer as a run
builds it (precision, the shape-counting callback), without a logger, checkpoints or a progress
bar, with per-step and per-batch times taken as the tuned loop takes them."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from fewtune.bench.timeline import Timeline, now
from fewtune.models.shapes_met import ShapesMet


class Times(pl.Callback):
    """A ``Timeline`` of training steps and one of test batches (with their outputs collected)."""

    def __init__(self, device: str, shapes: ShapesMet, seen: set | None = None):
        self.train = Timeline(device)
        self.test = Timeline(device)
        self.shapes, self.seen = shapes, seen
        self.outputs: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.train.stop(self.shapes.shape_log.last, self.seen, batch["attention_mask"].sum())

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.test.start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.outputs.append(outputs.float().cpu())  # as the tuned loop: the logits on the host
        self.test.stop(self.shapes.shape_log.last, self.seen, batch["attention_mask"].sum())


def trainer(cfg, device: str, times: Times, shapes: ShapesMet, **settings) -> pl.Trainer:
    """A Lightning trainer as the run's config has it (precision, sdpa_backends), without
    logging or saving."""
    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=cfg.trainer.precision,
        logger=False,
        # the ShapesMet callback first: Times reads the shape it logged in the same hook
        callbacks=[shapes, times],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **settings,
    )


def train(cfg, module, datamodule, device: str, steps: int, seen: set | None = None) -> Timeline:
    shapes = ShapesMet()
    times = Times(device, shapes, seen)
    start = now(device)
    trainer(cfg, device, times, shapes, max_steps=steps, limit_val_batches=0).fit(
        module, datamodule=datamodule
    )
    times.train.wall_s = now(device) - start
    return times.train


def evaluate(
    cfg, module, datamodule, device: str, seen: set | None = None
) -> tuple[torch.Tensor, Timeline]:
    """The test split's label logits in the data module's order, and per-batch times."""
    shapes = ShapesMet()
    times = Times(device, shapes, seen)
    module.to(device)  # as the tuned loop: the weights on the device before the timer starts
    start = now(device)
    trainer(cfg, device, times, shapes).test(module, datamodule=datamodule, verbose=False)
    times.test.wall_s = now(device) - start
    return torch.cat(times.outputs), times.test
