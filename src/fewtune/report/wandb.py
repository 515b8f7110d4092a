"""The table in W&B: one run (job_type "table") that logs the paper-style table as a wandb.Table,
the same numbers one cell a line (mean, std, seeds: for W&B's own charts), and the plots.

Offline unless WANDB_MODE says otherwise, as the training logger is: no account needed, and
`wandb sync <run folder>` uploads it later.
"""

from __future__ import annotations

import os
from pathlib import Path

from fewtune.report import paper as lmbff


def log_table(table, out: Path, images: list[Path], project: str = "fewtune") -> str:
    """Log ``table`` (a report.summary.Table) and ``images``; returns a line saying where the run is."""
    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    # The run folder goes beside table.md unless WANDB_DIR says where W&B runs go.
    where = {} if os.environ.get("WANDB_DIR") else {"dir": str(out)}
    run = wandb.init(
        project=project, job_type="table", name=f"table-{out.name}", mode=mode, **where
    )
    try:
        data = {
            "table": wandb.Table(columns=table.header(), data=table.text_rows()),
            "cells": wandb.Table(dataframe=table.long_frame()),
        }
        data.update({image.stem: wandb.Image(str(image)) for image in images})
        run.log(data)
        if table.has_paper:
            run.summary["paper"] = lmbff.CITATION
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    sync = f"; upload with `wandb sync {run_dir}`" if mode == "offline" else ""
    return f"logged to W&B ({mode}) in {run_dir}{sync}"
