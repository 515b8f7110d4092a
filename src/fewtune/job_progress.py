"""A Hydra callback that says which job of a multirun is starting: "job 3/30: sst2 prompt seed 42",
and, when the multirun ends, where its results are and the table command that reads them.

The total comes from the sweep itself (its grid expanded as Hydra's BasicSweeper does), read
once when the multirun starts; settings that vary across the sweep beyond task, method, peft
and seed (K, lr, batch size, ...) are shown too, so that each line names its job.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("fewtune")
_NAMED = ("task", "method", "peft", "seed")  # already in the line's words


class JobProgress(Callback):
    def __init__(self) -> None:
        self.total: int | None = None
        self.varying: list[str] = []

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from fewtune.sweep_jobs import expected_jobs

        try:
            jobs = expected_jobs(config.hydra)
        except Exception as err:  # a sweeper with its own syntax (Optuna, Ax): the line has no total
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
        log.info("job %d/%s: %s", config.hydra.job.num + 1, self.total or "?", describe(config, self.varying))


    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        log.info("multirun done: results in %s; the table: python -m fewtune.table %s", sweep_dir, sweep_dir)


def describe(config: DictConfig, varying: list[str] = ()) -> str:
    """"sst2 prompt+lora seed 42", then the job's own value of each varying override."""
    method = config.method.name
    peft = config.get("peft")
    if peft is not None and peft.name != "none":
        method += f"+{peft.name}"
    words = [config.task.name, method, f"seed {config.seed}"]
    overrides = dict(o.partition("=")[::2] for o in config.hydra.overrides.task)
    words += [f"{key}={overrides[key]}" for key in varying if key in overrides]
    return " ".join(words)
