"""Run results on disk: written atomically, so a killed run never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
FAILED_FILE = "failed.json"


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_file_atomic(path, json.dumps(data, indent=2, sort_keys=True))


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


def write_file_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a whole file (text as UTF-8, newlines kept as given) through a temporary file
    and a rename, so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it visible
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make shared data and results private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
