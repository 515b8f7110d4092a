"""One model that PET trains (a pattern's prompt model, or the distilled classifier): built by
``run.build.build`` from a run config and fitted by ``run.fit.fit`` as a single run is (the config's trainer,
callbacks and best-dev checkpoint), then asked for its label logits on any examples.

Its training set may be replaced: iPET adds labelled unlabeled examples, distillation trains on
soft labels (a list of label probabilities per example: ``F.cross_entropy`` in the module's loss
takes class probabilities as targets, which makes it the soft-label cross-entropy).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fewtune.data.tasks import Example
from fewtune.errors import FewtuneError
from fewtune.run.resources import StepTimer
from fewtune.run.results import count_parameters


class ModelRun:
    def __init__(self, cfg):
        from hydra.utils import instantiate

        from fewtune.run.build import build, instantiate_group
        from fewtune.run.progress import progress_callbacks

        self.cfg = cfg
        self.folder = Path(cfg.paths.output_dir)
        self.datamodule, self.module = build(cfg)
        self.datamodule.setup()  # the K-shot splits, encoded; Lightning's setup keeps them
        self.trainable, self.total = count_parameters(self.module)
        self.timer = StepTimer()
        callbacks = [*instantiate_group(cfg.get("callbacks")), self.timer, *progress_callbacks(cfg)]
        self.trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False)
        if self.trainer.world_size > 1:
            raise FewtuneError(
                "method=pet trains its models one after another in one process; use one device (trainer.devices=1)"
            )
        self.best_dev: float | None = None
        self.stored_bytes = 0

    def set_training(self, examples: list[Example], labels: list, keep_k_shot: bool) -> None:
        """Train on ``examples`` with ``labels`` (label indices or label distributions), after the
        K-shot training set or instead of it."""
        encoder = self.datamodule.encoder
        added = [encoder.encode(ex, label) for ex, label in zip(examples, labels)]
        self.datamodule.encoded["train"] = (
            self.datamodule.encoded["train"] if keep_k_shot else []
        ) + added

    def fit(self) -> None:
        """Train, then load the best dev step's weights (peft: kept as the folder's task weights)."""
        from fewtune.run.fit import fit, keep_best_weights

        for stale in (self.folder / "checkpoints").glob(
            "*.ckpt"
        ):  # from a killed run: would make best-v1.ckpt
            stale.unlink()
        self.best_dev, path = fit(self.trainer, self.module, self.datamodule)
        path, self.stored_bytes = keep_best_weights(self.cfg, self.module, path, self.folder)
        if path:
            self.module.load_state_dict(
                torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
            )
            if self.cfg.get("delete_checkpoints"):
                Path(path).unlink(missing_ok=True)
                if not any(Path(path).parent.iterdir()):
                    Path(path).parent.rmdir()

    @property
    def steps(self) -> int:
        return self.trainer.global_step

    def predict(self, examples: list[Example]) -> torch.Tensor:
        """[examples, labels]: the model's label logits, in the order of ``examples``."""
        if not examples:
            return torch.zeros(0, self.module.num_labels)
        encoder = self.datamodule.encoder
        encoded = [encoder.encode(ex, 0) for ex in examples]  # the label is not read
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))  # less padding
        loader = DataLoader(
            [encoded[i] for i in order],
            batch_size=self.cfg.eval_batch_size,
            collate_fn=self.datamodule.collate,
        )
        # Lightning's default predict_step is the module's forward: the label logits.
        batches = self.trainer.predict(self.module, dataloaders=loader)
        logits = torch.cat([b.float().cpu() for b in batches])
        out = torch.empty_like(logits)
        out[torch.tensor(order)] = logits
        return out
