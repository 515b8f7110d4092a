"""A finished run applied to new texts, exactly as its test phase ran: ``python -m fewtune.predict``.

The run's config rebuilds the model as ``python -m fewtune.evaluate`` does (the shared backbone
plus the run's trained weights: peft's task weights, or full fine-tuning's checkpoint), with the
run's template, label words, demonstrations, calibration, early exit and precision. The texts
take the test split's place in the run's data module, so they are encoded, sorted, batched,
shown demonstrations (drawn as for the test example at the same position) and calibrated as the
test was: on the run's own test file, the predictions are its stored test predictions.
A PET run predicts with its distilled model, or with its patterns' models and their ensemble.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict
from pytorch_lightning.callbacks import Callback

from fewtune.data.tasks import Example, TaskSpec
from fewtune.errors import FewtuneError
from fewtune.predictions.store import Predictions, task_meta
from fewtune.run.results import METRICS_FILE

log = logging.getLogger("fewtune")


def stored_weights(cfg: DictConfig, run_dir: Path) -> Path | None:
    """The file holding the run's trained weights (as evaluate.load_run_weights reads it); None: untrained."""
    from fewtune import peft

    if peft.enabled(cfg.peft):
        return run_dir / peft.TASK_WEIGHTS_FILE
    if cfg.method.train:
        checkpoint = cfg.callbacks.model_checkpoint
        return Path(checkpoint.dirpath) / f"{checkpoint.filename}.ckpt"
    return None


def require_weights(cfg: DictConfig, run_dir: Path) -> None:
    """A clear line, before anything loads, where the run kept no weights to apply."""
    path = stored_weights(cfg, run_dir)
    if path is not None and not path.is_file():
        raise FewtuneError(
            f"{run_dir} kept no trained weights ({path} is missing): a full fine-tuning run keeps them only in "
            "its best checkpoint, which delete_checkpoints=true removes; train it again with delete_checkpoints=false "
            "(or with a peft method, which keeps its small task weights)"
        )


def require_finished(run_dir: Path) -> None:
    if not (run_dir / METRICS_FILE).is_file():
        raise FewtuneError(
            f"{run_dir} has no {METRICS_FILE}: the run did not finish, so it has no final weights to apply"
        )


def placeholder_label(task: TaskSpec) -> str:
    """New texts have no label; the data module reads one, which the predictions never use."""
    return str(task.score_range[0]) if task.regression else task.labels[0]


def for_prediction(cfg: DictConfig, progress: str) -> DictConfig:
    """The run's config, set to predict every given text (no test-batch limit) with progress."""
    with open_dict(cfg):
        cfg.trainer.limit_test_batches = 1.0
        cfg.trainer.enable_progress_bar = progress != "none"
        cfg.progress = progress
    return cfg


class LogEveryTenth(Callback):
    """Progress for a long file without a terminal: a log line at each tenth of the batches."""

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        total = sum(trainer.num_test_batches)
        if (batch_idx + 1) % max(1, total // 10) == 0 or batch_idx + 1 == total:
            log.info("predicted %d/%d batches", batch_idx + 1, total)


def predict_examples(
    cfg: DictConfig, run_dir: Path, examples: list[Example], progress: str = "auto"
) -> Predictions:
    """The run's predictions for ``examples``, in their order (``index`` = position)."""
    import hydra
    import pytorch_lightning as pl

    from fewtune.predictions.recorder import PredictionRecorder
    from fewtune.run.build import build
    from fewtune.run.console import is_terminal
    from fewtune.run.progress import progress_callbacks
    from fewtune.run.reload import load_run_weights
    from fewtune.scoring.calibration import calibrate_module

    cfg = for_prediction(cfg, progress)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    datamodule.supplied["test"] = examples
    calibrate_module(
        cfg, module, datamodule
    )  # p_cf as the run measured it (untrained methods only)
    load_run_weights(module, cfg, run_dir)
    recorder = PredictionRecorder()
    rich = progress == "rich" or (progress == "auto" and is_terminal())
    callbacks = [
        recorder,
        *progress_callbacks(cfg),
        *([] if rich or progress == "none" else [LogEveryTenth()]),
    ]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return recorder.predictions("test", task_meta(datamodule.task, "new texts"))
