"""Fit a model and keep its best dev step: one routine for every run that trains (a single run,
each of PET's models).

``fit`` trains and names the best checkpoint the config's ModelCheckpoint kept; where none was
kept (no dev evaluation happened) it warns, and the last weights stand for the best.
``keep_best_weights`` then keeps what the run stores: a peft run's trained weights alone, else
the checkpoint itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger("fewtune")

NO_DEV_WARNING = "no dev evaluation happened (max_steps < val_check_interval?): the last weights stand for the best"


def best_checkpoint_callback(callbacks):
    """The ModelCheckpoint that tracks the best dev metric (not the resumable last.ckpt's), or None."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from fewtune.jobs.resume import ResumeCheckpoint

    chosen = (
        c
        for c in callbacks
        if isinstance(c, ModelCheckpoint) and not isinstance(c, ResumeCheckpoint)
    )
    return next(chosen, None)


def fit(trainer, module, datamodule, job=None) -> tuple[float | None, str | None]:
    """Train; returns (the best dev metric, the best checkpoint's path or None).

    ``job`` (jobs/resume.py's Job): a killed run continues from its last.ckpt, and a run killed
    while testing finds its best weights where it left them."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=job.resume_from(module) if job else None)
    checkpoint = best_checkpoint_callback(trainer.callbacks)
    best_dev = None
    if checkpoint is not None and checkpoint.best_model_score is not None:
        best_dev = float(checkpoint.best_model_score)
    path = (
        checkpoint.best_model_path
        if checkpoint is not None and checkpoint.best_model_path
        else None
    )
    if job is not None:
        path = job.best_checkpoint(path, module)
    if path is None and not (job is not None and job.resumed_from):
        log.warning(NO_DEV_WARNING)
    return best_dev, path


def keep_best_weights(
    cfg: DictConfig, module, ckpt_path: str | None, out: Path, strategy=None
) -> tuple[str | None, int]:
    """What a run keeps of its best dev step, and its size on disk. With peft, the trained weights
    alone, loaded into the module (and merged if asked): no checkpoint is left to load. Without,
    the best checkpoint itself."""
    from fewtune import peft

    if peft.enabled(cfg.peft):
        stored = (
            peft.keep_task_weights(module, ckpt_path, out, cfg.peft.name, strategy).stat().st_size
        )
        peft.merge_if_asked(module.model, cfg.peft)
        return None, stored
    return ckpt_path, Path(ckpt_path).stat().st_size if ckpt_path else 0
