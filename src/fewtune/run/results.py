"""What a run folder holds and what its metrics.json says about the run (written with
jobs/atomic.py, so a killed run never leaves half a file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fewtune.errors import FewtuneError

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


def cost_record(trainable: int, total: int, stored_bytes: int, step_time_s) -> dict[str, Any]:
    """The costs every method's metrics.json carries (the table's ``--costs`` columns)."""
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": round(trainable / total, 6),
        "task_storage_bytes": stored_bytes,
        "step_time_s": step_time_s,
    }


def count_parameters(module) -> tuple[int, int]:
    """(trainable, total) parameters; ``parameters()`` already counts tied weights once."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def read_json_object(path: str | Path, fix: str) -> dict[str, Any]:
    """A results file (metrics.json, failed.json) as a dict; a truncated or foreign file is one
    line naming it and ``fix``, never a result."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        why = f"not valid JSON ({err.msg if isinstance(err, json.JSONDecodeError) else 'not UTF-8'}); truncated?"
        raise FewtuneError(f"{path} is {why} it is no result: {fix}") from None
    if not isinstance(data, dict):
        raise FewtuneError(
            f"{path} holds a JSON {type(data).__name__}, not an object: it is no result: {fix}"
        )
    return data
