"""The Trainer's progress: Lightning's RichProgressBar on a terminal, log lines elsewhere.

A log file, a pipe or a batch job (SLURM, CI) gets one line per dev evaluation and per test
instead of a bar redrawn thousands of times. ``progress=`` in the config picks: auto (the
default: rich when stdout is a terminal, else log), rich, log or none.
"""

from __future__ import annotations

import logging

from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar

from fewtune.errors import FewtuneError
from fewtune.progress import is_terminal

log = logging.getLogger("fewtune")
STYLES = ("auto", "rich", "log", "none")


def progress_callbacks(cfg) -> list:
    """The progress callback for a run's Trainer; [] where ``trainer.enable_progress_bar`` is false
    (Lightning refuses a progress callback then). A run saved before ``progress`` existed: auto."""
    style = cfg.get("progress") or "auto"
    if style not in STYLES:
        raise FewtuneError(f"progress='{style}' is unknown; use one of {list(STYLES)}")
    if not cfg.trainer.get("enable_progress_bar", True):
        return []
    if style == "rich" or (style == "auto" and is_terminal()):
        return [_step_bar()]
    bar = LogProgress()
    if style == "none":  # still a ProgressBar, so that Lightning adds none of its own
        bar.disable()
    return [bar]


class LogProgress(ProgressBar):
    """A progress "bar" for logs: one line per dev evaluation and per test, no redrawing."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._enabled:
            return
        if trainer.limit_val_batches == 0:  # a phase without dev evaluation (SetFit's)
            log.info("training: %s steps", trainer.max_steps)
        else:
            log.info("training: %s steps, dev every %s steps", trainer.max_steps, trainer.val_check_interval)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        metrics, fitting = trainer.callback_metrics, trainer.state.fn == "fit"
        parts = [f"step {trainer.global_step}/{trainer.max_steps}:" if fitting else "dev:"]
        if fitting and "train/loss" in metrics:
            parts.append(f"train/loss {float(metrics['train/loss']):.4f}")
        parts += [f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()) if k.startswith("val/")]
        log.info(" ".join(parts))

    def on_test_start(self, trainer, pl_module) -> None:
        if self._enabled:
            log.info("testing: %d batches", sum(trainer.num_test_batches))


def _step_bar():
    """Lightning's RichProgressBar counting optimizer steps out of max_steps: a K-shot epoch is a
    few batches, so the default bar per epoch ("Epoch 12/-2", 1/4) says nothing about the run."""
    from pytorch_lightning.callbacks import RichProgressBar

    class StepProgressBar(RichProgressBar):
        @property
        def total_train_batches(self):
            return self.trainer.max_steps if self.trainer.max_steps > 0 else super().total_train_batches

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if self.train_progress_bar_id is None:  # one bar for the whole fit, not one per epoch
                super().on_train_epoch_start(trainer, pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)

        def _get_train_description(self, current_epoch: int) -> str:
            return f"{'Training':{len(self.validation_description)}}"

    return StepProgressBar()
