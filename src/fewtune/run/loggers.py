"""The run's loggers: W&B quiet, one W&B run per job, and a line saying where an offline run is."""

from __future__ import annotations

import logging
import sys

from pytorch_lightning.loggers import WandbLogger

log = logging.getLogger("fewtune")


class QuietWandbLogger(WandbLogger):
    """Lightning's WandbLogger, without the one argument that makes W&B print a warning on every
    run: Lightning passes ``anonymous=None`` to ``wandb.init``, which W&B 0.31 answers with
    "The anonymous setting has no effect"; the key is left out instead."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


def say_where_wandb_keeps(logger) -> None:
    """W&B's own banner is off (conf/logger/wandb.yaml): one line says where an offline run is."""
    if isinstance(logger, WandbLogger) and logger.experiment.settings.mode in ("offline", "dryrun"):
        log.info(
            "W&B run kept offline; to upload it: wandb sync %s", logger.experiment.settings.sync_dir
        )


def finish_wandb() -> None:
    """End the job's W&B run, if one is open: without this, the jobs of a multirun merge into one run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def run_loggers(cfg) -> list:
    """The config's loggers (``logger=``), each given the run's whole config."""
    from omegaconf import OmegaConf

    from fewtune.run.build import instantiate_group

    loggers = instantiate_group(cfg.get("logger"))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


def close_loggers(loggers: list, costs: dict, step: int, predictions: dict) -> None:
    """A finished run's costs and predictions (W&B: as tables) to each logger, which is then saved
    (an offline W&B run says where it is kept)."""
    from fewtune.predictions.run_files import log_predictions

    for logger in loggers:
        logger.log_metrics(
            {f"cost/{name}": v for name, v in costs.items() if v is not None}, step=step
        )
        log_predictions([logger], predictions)
        logger.save()
        say_where_wandb_keeps(logger)
