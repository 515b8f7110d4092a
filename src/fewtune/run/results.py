"""What a run folder holds and what its metrics.json says about the run (written with
jobs/atomic.py, so a killed run never leaves half a file)."""

from __future__ import annotations

from typing import Any

METRICS_FILE = "metrics.json"
FAILED_FILE = "failed.json"


def run_identity(cfg) -> dict[str, Any]:
    """The keys that say which run a metrics.json belongs to (the table groups by them)."""
    return {
        "task": cfg.task.name,
        "model": cfg.model.name,
        "method": cfg.method.name,
        "peft": cfg.peft.name,
        "k": cfg.k,
        "seed": cfg.seed,
        "data_seed": cfg.data_seed,
        "metric": cfg.task.metric,
    }


def count_parameters(module) -> tuple[int, int]:
    """(trainable, total) parameters; ``parameters()`` already counts tied weights once."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
