"""What both heads share: label logits -> loss, metrics on dev and test, the optimizer.

A subclass implements ``label_logits(batch) -> [batch, num_labels]``; everything else
(cross-entropy over labels, torchmetrics on dev/test, logging with slash names, AdamW with a
linear schedule) lives here once.
"""

from __future__ import annotations

from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from fewtune.metrics import build_metrics, to_floats


class FewShotModule(pl.LightningModule):
    def __init__(
        self,
        num_labels: int,
        metric: str,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
    ):
        super().__init__()
        self.num_labels = num_labels
        self.metric = metric
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_metrics = build_metrics(metric, num_labels, prefix="val/")
        self.test_metrics = build_metrics(metric, num_labels, prefix="test/")
        self.test_results: dict[str, float] = {}

    def label_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if stage == "fit":
            # from_pretrained returns the backbone in eval mode; fine-tuning uses its dropout.
            self.train()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.label_logits(batch)

    @torch.no_grad()
    def predict_labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.label_logits(batch).argmax(-1)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self.label_logits(batch).float(), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def _evaluate(self, batch, metrics) -> None:
        logits = self.label_logits(batch)
        metrics.update(logits.float(), batch["labels"])

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self):
        self.log_dict(to_floats(self.val_metrics.compute()), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx):
        self._evaluate(batch, self.test_metrics)

    def on_test_epoch_end(self):
        self.test_results = to_floats(self.test_metrics.compute())
        self.log_dict(self.test_results)
        self.test_metrics.reset()

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        total = max(self.trainer.max_steps, 1)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
