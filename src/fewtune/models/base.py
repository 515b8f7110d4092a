"""What both heads share: label logits -> loss, metrics on dev and test, the optimizer.

A subclass implements ``label_logits(batch) -> [batch, num_labels]``; everything else
(cross-entropy over labels, torchmetrics on dev/test, logging with slash names, AdamW with a
linear schedule) lives here once.

A regression task (STS-B) reads the same logits as a score in [0, 1]: ``score`` and
``regression_loss`` below say how, for both heads.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from fewtune.data.lengths import LengthLadder
from fewtune.models import attention
from fewtune.models.device_defaults import pack_setting, packs_on
from fewtune.run.metrics import build_metrics, to_floats


def score(logits: torch.Tensor) -> torch.Tensor:
    """The predicted score in [0, 1] from a regression task's logits.

    One output (a regression head) is the score itself. Two outputs are the label words of the
    low and high ends of the range (LM-BFF's STS-B: No / Yes): the score is p(high word) under
    the softmax over the two, so the score on the task's scale is e.g. 5 * p(Yes).
    """
    logits = logits.float()
    if logits.size(-1) == 1:
        return logits.squeeze(-1)
    # contiguous: Pearson sums it batch by batch, and a strided column sums in another order than
    # the stored scores do when they are re-scored (fewtune/predictions/rescore.py): bits would differ
    return logits.softmax(-1)[:, 1].contiguous()


def regression_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE for a regression head; for two label words, KL(target || model) with target (1 - y, y)."""
    logits, target = logits.float(), target.float()
    if logits.size(-1) == 1:
        return F.mse_loss(logits.squeeze(-1), target)
    # LM-BFF's KLDivLoss(log_target=True) is given probabilities as targets; this is the intended KL.
    wanted = torch.stack([1 - target, target], -1)
    return F.kl_div(logits.log_softmax(-1), wanted, reduction="batchmean")


class FewShotModule(pl.LightningModule):
    def __init__(
        self,
        num_labels: int,
        metric: str,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        regression: bool = False,
        trained_only_checkpoints: bool = False,
        pack_training: bool | str = "auto",
        lengths: LengthLadder | None = None,
        sdpa_backends="auto",
    ):
        super().__init__()
        self.num_labels = num_labels
        self.metric = metric
        self.regression = regression
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_metrics = build_metrics(metric, num_labels, prefix="val/")
        self.test_metrics = build_metrics(metric, num_labels, prefix="test/")
        self.test_results: dict[str, float] = {}
        # A parameter-efficient run checkpoints only the weights it trains: the backbone is shared.
        self.trained_only_checkpoints = trained_only_checkpoints
        # Training batches without padding where the model packs correctly (models/packing.py);
        # probed on the first training batch. Evaluation batches are length-sorted already.
        # auto: on the CPU, not on a GPU (models/device_defaults.py).
        self.pack_training = pack_setting(pack_training)
        # The ladder packed rows are filled up to (data/lengths.py): a few shapes in a run.
        self.lengths = lengths
        # The attention kernels the steps may use, per device and phase (models/attention.py).
        self.sdpa_backends = attention.check(sdpa_backends)
        self._packing: str | None = None
        self._probed = False

    def label_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def packing(self, batch: dict[str, torch.Tensor]) -> str | None:
        """How this batch is packed ("positions", "block_mask"), or None: it stays padded."""
        if not (self.training and packs_on(self.pack_training, batch["input_ids"].device.type)):
            return None
        if not self._probed:
            from fewtune.models.packing import probe

            self._packing = probe(self, batch, self.padded_rows, self.packed_rows)
            self._probed = True
        return self._packing

    def head_rows(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The head's per-example outputs, from a packed batch where this one packs."""
        how = self.packing(batch)
        return self.padded_rows(batch) if how is None else self.packed_rows(batch, how)

    def padded_rows(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-example outputs of the padded batch that packing must reproduce (see ``packing``)."""
        raise NotImplementedError

    def packed_rows(self, batch: dict[str, torch.Tensor], how: str) -> torch.Tensor:
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        if stage == "fit":
            # from_pretrained returns the backbone in eval mode; fine-tuning uses its dropout.
            self.train()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.label_logits(batch)

    @torch.no_grad()
    def predict_labels(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Label indices, or scores in [0, 1] for a regression task."""
        logits = self.label_logits(batch)
        return score(logits) if self.regression else logits.argmax(-1)

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """What the metrics compare with the targets: the label logits, or the score."""
        return score(logits) if self.regression else logits.float()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.regression:
            return regression_loss(logits, targets)
        return F.cross_entropy(logits.float(), targets)

    def training_step(self, batch, batch_idx):
        # the kernel chosen in the forward pass also runs the backward pass
        with attention.kernels(self.sdpa_backends, self.device.type, "train"):
            loss = self.loss(self.label_logits(batch), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["labels"]))
        return loss

    def _evaluate(self, batch, metrics) -> torch.Tensor:
        with attention.kernels(self.sdpa_backends, self.device.type, "eval"):
            logits = self.label_logits(batch)
        metrics.update(self.predictions(logits), batch["labels"])
        return logits

    def validation_step(self, batch, batch_idx):
        # The label logits go to callbacks' on_validation_batch_end (the dev predictions).
        return self._evaluate(batch, self.val_metrics)

    def on_validation_epoch_end(self):
        self.log_dict(to_floats(self.val_metrics.compute()), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch, batch_idx):
        # The label logits go to callbacks' on_test_batch_end (the benchmark compares predictions).
        return self._evaluate(batch, self.test_metrics)

    def on_test_epoch_end(self):
        self.test_results = to_floats(self.test_metrics.compute())
        self.log_dict(self.test_results)
        self.test_metrics.reset()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.trained_only_checkpoints:
            trained = {name for name, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {
                k: v for k, v in checkpoint["state_dict"].items() if k in trained
            }

    def trainable_groups(self) -> list:
        """What the optimizer gets: the trainable parameters, or parameter groups with their own lr."""
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.trainable_groups())
        if self.scheduler_factory is None:
            return optimizer
        total = max(self.trainer.max_steps, 1)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
