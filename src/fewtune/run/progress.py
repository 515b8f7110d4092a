"""Progress, shown where someone watches and logged where no one does.

- ``progress_callbacks(cfg)``: the Trainer's progress, Lightning's RichProgressBar on a terminal,
  log lines elsewhere. A log file, a pipe or a batch job (SLURM, CI) gets one line per dev
  evaluation and per test instead of a bar redrawn thousands of times, and in between a line at
  least every ``progress_every_s`` seconds saying where the run is, its rate and the time left,
  so that slow is never mistaken for hung. ``progress=`` in the config picks: auto (the default:
  rich when stdout is a terminal, else log), rich, log or none.
- ``track(items, ...)``: a loop over many items (the table's runs) with a transient rich bar on
  a terminal, nothing in logs, pipes, batch jobs or tests.
- ``JobProgress``: a Hydra callback (conf/hydra/) that says which job of a multirun is starting:
  "job 3/30: sst2 prompt seed 42", and when the multirun ends where its results are and the
  table command that reads them. The total comes from the sweep itself (its grid expanded as
  Hydra's BasicSweeper does), read once when the multirun starts; settings that vary across the
  sweep beyond task, method, peft and seed (K, lr, batch size, ...) are shown too, so that each
  line names its job.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from pytorch_lightning.callbacks.progress.progress_bar import ProgressBar

from fewtune.errors import FewtuneError
from fewtune.run.console import is_terminal

log = logging.getLogger("fewtune")
T = TypeVar("T")
STYLES = ("auto", "rich", "log", "none")
_NAMED = ("task", "method", "peft", "seed")  # already in a job line's words


def track(items: Sequence[T], description: str, min_items: int = 20) -> Iterable[T]:
    """``items``, with a transient rich bar on stderr when it is a terminal and there are many."""
    if len(items) < min_items or not is_terminal(sys.stderr):
        return items
    from rich.console import Console
    from rich.progress import track as rich_track

    return rich_track(items, description=description, console=Console(stderr=True), transient=True)


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
        left = (
            f", about {_duration(per_unit * (total - done))} left"
            if known and total >= done
            else ""
        )
        total_text = str(int(total)) if known else "?"
        self._say("%s: %s %d/%s, %.2f s/%s%s", phase, unit, done, total_text, per_unit, unit, left)

    def on_train_start(self, trainer, pl_module) -> None:
        self._begin("training")
        if not self._enabled:
            return
        if trainer.limit_val_batches == 0:  # a phase without dev evaluation (SetFit's)
            self._say("training: %s steps", trainer.max_steps)
        else:
            self._say(
                "training: %s steps, dev every %s steps",
                trainer.max_steps,
                trainer.val_check_interval,
            )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._beat("training", "step", trainer.global_step, trainer.max_steps)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._begin("dev")

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
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

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
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
            return (
                self.trainer.max_steps
                if self.trainer.max_steps > 0
                else super().total_train_batches
            )

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if self.train_progress_bar_id is None:  # one bar for the whole fit, not one per epoch
                super().on_train_epoch_start(trainer, pl_module)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)

        def _get_train_description(self, current_epoch: int) -> str:
            return f"{'Training':{len(self.validation_description)}}"

    return StepProgressBar()


class JobProgress(Callback):
    def __init__(self) -> None:
        self.total: int | None = None
        self.varying: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from fewtune.jobs.sweep import expected_jobs

        try:
            jobs = expected_jobs(config.hydra)
        except (
            Exception
        ) as err:  # a sweeper with its own syntax (Optuna, Ax): the line has no total
            log.debug("cannot count the sweep's jobs: %s", err)
            return
        self.total = len(jobs)
        values: dict[str, set[str]] = {}
        for job in jobs:
            for override in job:
                key, _, value = override.partition("=")
                values.setdefault(key, set()).add(value)
        self.varying = [k for k, v in values.items() if len(v) > 1 and k.lstrip("+~") not in _NAMED]

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        log.info(
            "job %d/%s: %s",
            config.hydra.job.num + 1,
            self.total or "?",
            describe(config, self.varying),
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        log.info(
            "multirun done: results in %s; the table: python -m fewtune.table %s",
            sweep_dir,
            sweep_dir,
        )


def describe(config: DictConfig, varying: list[str] = ()) -> str:
    """ "sst2 prompt+lora seed 42", then the job's own value of each varying override."""
    method = config.method.name
    peft = config.get("peft")
    if peft is not None and peft.name != "none":
        method += f"+{peft.name}"
    words = [config.task.name, method, f"seed {config.seed}"]
    overrides = dict(o.partition("=")[::2] for o in config.hydra.overrides.task)
    words += [f"{key}={overrides[key]}" for key in varying if key in overrides]
    return " ".join(words)
