"""A Lightning callback that records, in each process of a run, the rank Lightning gave it, the
cluster environment that gave it, and the SLURM task it runs in: one JSON file per process."""

import json
import os
from pathlib import Path

from pytorch_lightning.callbacks import Callback


class RecordRanks(Callback):
    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_fit_start(self, trainer, pl_module) -> None:
        record = {
            "global_rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "cluster_environment": type(trainer.strategy.cluster_environment).__name__,
            "slurm_procid": os.environ.get("SLURM_PROCID"),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "pid": os.getpid(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
