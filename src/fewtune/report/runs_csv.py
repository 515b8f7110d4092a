"""runs.csv beside a table: every run, and whether its number is the one a cell uses, so that a
number in the table can be traced to its folder, config hash and git commit."""

from __future__ import annotations

import csv
import io
import json

from fewtune.run.results import METRICS_FILE

COLUMNS = [
    "task",
    "method",
    "model",
    "k",
    "seed",
    "status",
    "in_table",
    "test",
    "best_dev",
    "config_hash",
    "commit",
    "dirty",
    "run",
]


def _provenance(run) -> dict:
    path = run.path / METRICS_FILE
    if run.status != "completed" or not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    git = (metrics.get("provenance") or {}).get("git") or {}
    return {
        "config_hash": metrics.get("config_hash"),
        "commit": git.get("commit"),
        "dirty": git.get("dirty"),
    }


def runs_csv(runs: list, chosen: dict) -> str:
    """One line per run; ``chosen`` is the table's best-on-dev run per (method, model, k, task, seed)."""
    used = {id(run) for run in chosen.values()}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS)
    writer.writeheader()
    key = lambda r: (r.task, r.method, r.model, r.k, r.seed, str(r.path))  # noqa: E731
    for run in sorted(runs, key=key):
        writer.writerow(
            {
                "task": run.task,
                "method": run.method,
                "model": run.model,
                "k": run.k,
                "seed": run.seed,
                "status": run.status,
                "in_table": "yes" if id(run) in used else "no",
                "test": run.test,
                "best_dev": run.dev,
                "run": str(run.path),
                **_provenance(run),
            }
        )
    return buf.getvalue()
