"""Resumable jobs: skip a job whose results are complete for the same config, and continue a
killed one from its last dev evaluation.

A run's ``config_hash`` (in metrics.json) hashes its resolved config without the settings that
do not change results (where things are written, logging, progress bars), plus the md5 of the
data files it reads, so that moving the data or the outputs does not force a rerun but changed
data does. The code's version is not part of it (provenance records the commit).

While a job trains, ``checkpoints/last.ckpt`` holds everything to continue (weights, or for a
peft run only its trained weights; optimizer, scheduler, loop and callback state, so the best
checkpoint's tracking goes on); it is stamped with the config hash, and deleted once the job
has written metrics.json. ``resume_checkpoint=false`` keeps the skipping but writes no
last.ckpt (a killed job restarts from step 0); ``resume=false`` turns both off.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from lightning_fabric.plugins import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from fewtune.errors import FewtuneError
from fewtune.jobs import provenance
from fewtune.jobs.atomic import replaced
from fewtune.jobs.folders import remove_partial_writes
from fewtune.run.methods import PLUGIN_KEYS, claimed_task_keys, plugin_settings
from fewtune.run.results import FAILED_FILE, METRICS_FILE, read_json_object

log = logging.getLogger("fewtune")

CHECKPOINT_DIR = "checkpoints"
LAST = "last"
PREVIOUS_METRICS = "metrics.previous.json"
# Settings that do not change what a run computes. Set to null before resolving, so that
# values interpolating them (a checkpoint's dirpath) do not carry a path into the hash either,
# then left out.
IGNORED = (
    "paths",
    "logger",
    "resume",
    "resume_checkpoint",
    "progress",
    "delete_checkpoints",
    "host_memory",  # how glibc keeps freed memory (run/hardware.py)
    "trainer.default_root_dir",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    # which code runs the method, not what it computes (run/methods.py)
    *(f"method.{key}" for key in PLUGIN_KEYS),
)
# Callbacks that only display or log.
IGNORED_CALLBACKS = ("ProgressBar", "ModelSummary", "LearningRateMonitor")


def config_hash(cfg: DictConfig, data: dict[str, Any]) -> str:
    own = set(
        plugin_settings(cfg.get("method") or {}).get("task_keys") or ()
    )  # before IGNORED nulls it
    material = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    for key in IGNORED:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(material, parent) if parent else material
        if isinstance(node, DictConfig) and leaf in node:
            child = node._get_node(leaf)
            if isinstance(
                child, DictConfig
            ):  # null each value: ${paths.output_dir}/x still resolves
                for name in child:
                    child[name] = None
            else:
                node[leaf] = None
    for name, callback in (material.get("callbacks") or {}).items():
        target = str((callback or {}).get("_target_", ""))
        if target.endswith(IGNORED_CALLBACKS):
            material.callbacks[name] = None
        elif "dirpath" in (callback or {}):
            callback.dirpath = None
    resolved = OmegaConf.to_container(material, resolve=True)
    # Task keys that only some methods read (PET's patterns): adding them to a task must not
    # rerun the jobs of the other methods.
    for key in claimed_task_keys() - own:
        (resolved.get("task") or {}).pop(key, None)
    for key in IGNORED:  # and then drop them: logger=none and logger=csv differ in their keys
        *parents, leaf = key.split(".")
        node = resolved
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    text = json.dumps(
        {"config": resolved, "data": {k: v["md5"] for k, v in data.items()}},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FileCheckpointIO(TorchCheckpointIO):
    """torch.save straight into a temporary file, then a rename: atomic like Lightning's own save,
    which first serialises the whole checkpoint into memory (a second copy of the weights and
    optimizer state at peak). No fsync: a killed process leaves the old file; after a power loss
    an unreadable last.ckpt only means starting the job afresh."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        import torch

        with replaced(path) as tmp:
            torch.save(checkpoint, tmp)


class ResumeCheckpoint(ModelCheckpoint):
    """Everything needed to continue, at each dev evaluation, stamped with the config hash."""

    def __init__(self, dirpath: Path, config_hash: str):
        super().__init__(
            dirpath=dirpath, filename=LAST, monitor=None, save_top_k=1, save_weights_only=False
        )
        self.config_hash = config_hash

    def setup(self, trainer, pl_module, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not a user's own plugin
            trainer.strategy.checkpoint_io = FileCheckpointIO()
        super().setup(trainer, pl_module, stage)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["fewtune_config_hash"] = self.config_hash


def checkpoint_stamp(path: Path) -> dict | None:
    """The last checkpoint's stamp and step, without reading its tensors (mmap); None if unreadable."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as err:  # a half-written or foreign file: start afresh
        log.warning("ignoring %s: %s", path, err)
        return None
    return {"config_hash": ckpt.get("fewtune_config_hash"), "step": ckpt.get("global_step")}


class Job:
    """One run's folder seen as a job that may be complete, resumable or new."""

    def __init__(self, cfg: DictConfig):
        self.out = Path(cfg.paths.output_dir)
        self.enabled = bool(cfg.get("resume", True))
        # last.ckpt at every dev evaluation costs a 1.6 GB write for smollm2-135m: short jobs skip it.
        self.save_last = self.enabled and bool(cfg.get("resume_checkpoint", True))
        self.data = provenance.data_files(cfg)
        self.code = provenance.code_state()
        self.hash = config_hash(cfg, self.data)
        self.checkpoints = self.out / CHECKPOINT_DIR
        self.last = self.checkpoints / f"{LAST}.ckpt"
        self.resume_path: Path | None = None
        self.resumed_from: int | None = None

    def start(self) -> dict | None:
        """The stored results if the job is complete for this config; else ready the folder to run."""
        remove_partial_writes(self.out)  # a temporary .best.ckpt.* of a killed write is never read
        metrics = self.out / METRICS_FILE
        if metrics.is_file():
            stored = read_json_object(metrics, f"delete it to run this job again (rm {metrics})")
            if self.enabled and stored.get("config_hash") == self.hash:
                log.info("skipping %s: complete", self.out)
                return stored
            why = (
                "has no config_hash (from an older fewtune), so it cannot be matched to this config"
                if "config_hash" not in stored
                else f"is for another config (hash {stored['config_hash']}, now {self.hash})"
            )
            log.warning(
                "rerunning %s: its metrics.json %s; kept as %s", self.out, why, PREVIOUS_METRICS
            )
            metrics.replace(self.out / PREVIOUS_METRICS)
        (self.out / FAILED_FILE).unlink(missing_ok=True)  # stale: this attempt decides
        stamp = checkpoint_stamp(self.last) if self.enabled and self.last.is_file() else None
        if stamp and stamp["config_hash"] == self.hash:
            self.resume_path, self.resumed_from = self.last, stamp["step"]
        else:
            # A fresh start: old checkpoints would make Lightning write best-v1.ckpt beside them.
            for old in self.checkpoints.glob("*.ckpt"):
                old.unlink()
        return None

    def callbacks(self) -> list:
        from fewtune.jobs.random_state import RandomState

        if not self.save_last:
            return []
        # the random state too: a resumed job draws what an uninterrupted one would
        return [ResumeCheckpoint(self.checkpoints, self.hash), RandomState()]

    def resume_from(self, module) -> str | None:
        """The checkpoint for ``trainer.fit(ckpt_path=...)``, or None to start from step 0."""
        if self.resume_path is None:
            return None
        if getattr(module, "trained_only_checkpoints", False):
            module.strict_loading = False  # a peft checkpoint holds the trained weights only
        log.info("resuming %s from step %s (%s)", self.out, self.resumed_from, self.resume_path)
        return str(self.resume_path)

    def best_checkpoint(self, path: str | None, module) -> str | None:
        """The best checkpoint to test with. A peft job killed while testing has already turned it
        into task_weights.safetensors: load those instead."""
        if not path or Path(path).is_file():
            return path
        from fewtune.peft.storage import TASK_WEIGHTS_FILE, load_task_weights

        if (self.out / TASK_WEIGHTS_FILE).is_file():
            load_task_weights(module, self.out / TASK_WEIGHTS_FILE)
            return None
        raise FewtuneError(
            f"the best checkpoint {path} is gone; delete {self.last} to train this job again"
        )

    def record(self) -> dict[str, Any]:
        """What metrics.json adds: the hash that makes the job skippable, and provenance."""
        return {
            "config_hash": self.hash,
            "resumed_from_step": self.resumed_from,
            "provenance": provenance.collect(self.data, self.code),
        }

    def finish(self) -> None:
        """Once metrics.json is written: the resumable checkpoint is large and no longer needed."""
        self.last.unlink(missing_ok=True)
        try:
            self.checkpoints.rmdir()  # only when empty
        except OSError:
            pass
