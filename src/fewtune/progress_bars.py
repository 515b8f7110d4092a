"""The Trainer's progress: Lightning's RichProgressBar on a terminal, log lines elsewhere.

A log file, a pipe or a batch job (SLURM, CI) gets one line per dev evaluation and per test
instead of a bar redrawn thousands of times, and in between a line at least every 30 seconds
saying where the run is, its rate and the time left, so that slow is never mistaken for hung. ``progress=`` in the config picks: auto (the
default: rich when stdout is a terminal, else log), rich, log or none.
"""

from __future__ import annotations

import logging
import time

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
    bar = LogProgress(every_s=float(cfg.get("progress_every_s", 30)))
    if style == "none":  # still a ProgressBar, so that Lightning adds none of its own
        bar.disable()
    return [bar]


class LogProgress(ProgressBar):
    """A progress "bar" for logs: one line per dev evaluation and per test, no redrawing, and a
    heartbeat line (where, rate, time left) whenever ``every_s`` seconds passed without a line."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self._enabled = True
        self.every_s = every_s
        self._last_line = time.perf_counter()
        self._phase_start: dict[str, float] = {}

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _say(self, message: str, *args) -> None:
        self._last_line = time.perf_counter()
        log.info(message, *args)

    def _begin(self, phase: str) -> None:
        self._phase_start[phase] = time.perf_counter()

    def _beat(self, phase: str, unit: str, done: int, total: int | float) -> None:
        now = time.perf_counter()
        if not self._enabled or done <= 0 or now - self._last_line < self.every_s:
            return
        per_unit = (now - self._phase_start.get(phase, now)) / done
        known = isinstance(total, int) or float(total).is_integer()
        left = f", about {_duration(per_unit * (total - done))} left" if known and total >= done else ""
        total_text = str(int(total)) if known else "?"
        self._say("%s: %s %d/%s, %.2f s/%s%s", phase, unit, done, total_text, per_unit, unit, left)

    def on_train_start(self, trainer, pl_module) -> None:
        self._begin("training")
        if self._enabled:
            self._say("training: %s steps, dev every %s steps", trainer.max_steps, trainer.val_check_interval)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._beat("training", "step", trainer.global_step, trainer.max_steps)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._begin("dev")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._beat("dev", "batch", batch_idx + 1, sum(trainer.num_val_batches))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        metrics, fitting = trainer.callback_metrics, trainer.state.fn == "fit"
        parts = [f"step {trainer.global_step}/{trainer.max_steps}:" if fitting else "dev:"]
        if fitting and "train/loss" in metrics:
            parts.append(f"train/loss {float(metrics['train/loss']):.4f}")
        parts += [f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()) if k.startswith("val/")]
        self._say(" ".join(parts))

    def on_test_start(self, trainer, pl_module) -> None:
        self._begin("testing")
        if self._enabled:
            self._say("testing: %d batches", sum(trainer.num_test_batches))

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._beat("testing", "batch", batch_idx + 1, sum(trainer.num_test_batches))


def _duration(seconds: float) -> str:
    """12 s, 4 min 05 s, 1 h 02 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


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
