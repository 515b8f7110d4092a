"""Training PET's models, a pattern's prompt model or the distilled classifier, and what PET
keeps of each once trained: its label logits and what it cost (``Trained``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fewtune.data.tasks import Example
from fewtune.pet.ensemble import accuracy
from fewtune.pet.kshot import KShot
from fewtune.pet.model_run import ModelRun
from fewtune.pet.patterns import Pattern, classifier_config, pattern_config


@dataclass
class Trained:
    dev: torch.Tensor  # [examples, labels] label logits of the best dev step's weights
    test: torch.Tensor
    unlabeled: torch.Tensor
    best_dev: float | None
    steps: int
    step_times: list[float]
    stored_bytes: int
    trainable: int
    total: int
    train_size: int
    precision: (
        str  # as the trainer resolved it ("bf16" -> "bf16-mixed"), as method=prompt records it
    )
    dev_accuracy_before: float | None = None

    @classmethod
    def of(
        cls, model: ModelRun, data: KShot, unlabeled: list[Example], before: float | None = None
    ) -> Trained:
        return cls(
            dev=model.predict(data.dev),
            test=model.predict(data.test),
            unlabeled=model.predict(unlabeled),
            best_dev=model.best_dev,
            steps=model.steps,
            step_times=model.timer.times[1:]
            or model.timer.times,  # without the warm-up step, as StepTimer
            stored_bytes=model.stored_bytes,
            trainable=model.trainable,
            total=model.total,
            train_size=len(model.datamodule.encoded["train"]),
            precision=str(model.trainer.precision),
            dev_accuracy_before=before,
        )


def train_pattern(cfg, pattern: Pattern, family: str, folder: Path, data: KShot, added: list, predict_on: list,
                  measure_before: bool) -> Trained:  # fmt: skip
    """method=prompt's model and training with the pattern as template, on the K-shot set plus
    ``added`` (example, label) pairs; its logits on dev, test and ``predict_on``."""
    import pytorch_lightning as pl

    pl.seed_everything(
        cfg.seed, workers=True
    )  # as a single run (run/single.py) seeds method=prompt
    model = ModelRun(pattern_config(cfg, pattern, family, folder))
    before = None
    if measure_before:
        with torch.random.fork_rng(
            devices=[]
        ):  # the DataLoader draws a seed: keep training's randomness
            before = accuracy(model.predict(data.dev), data.targets("dev"))
    if added:
        model.set_training([ex for ex, _ in added], [label for _, label in added], keep_k_shot=True)
    model.fit()
    return Trained.of(model, data, predict_on, before)


def train_distilled(
    cfg, data: KShot, unlabeled: list[Example], soft_labels: torch.Tensor
) -> Trained:
    """method=finetune's classifier head trained on the soft labels alone; dev picks its checkpoint."""
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True)
    model = ModelRun(classifier_config(cfg, Path(cfg.paths.output_dir) / "distilled"))
    model.set_training(unlabeled, soft_labels.tolist(), keep_k_shot=False)
    model.fit()
    return Trained.of(model, data, [])


def stack(models: list[Trained], split: str) -> torch.Tensor:
    """[patterns, examples, labels]: the models' logits on one split, as ensemble.py takes them."""
    return torch.stack([getattr(m, split) for m in models])
