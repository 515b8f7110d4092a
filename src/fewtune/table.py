"""Runs -> a paper-style table: mean (std) over seeds, in LM-BFF Table 3's layout.

    python -m fewtune.table <multirun dir> [more dirs] [--out DIR] [--paper] [--wandb]

Every folder with a ``.hydra/config.yaml`` below the given folders is a run. A run with
``metrics.json`` is complete; with ``failed.json`` it failed; with neither it was killed or
is still running. Jobs that a multirun's sweep asked for but that have no folder at all are
missing. All of these are listed under the table instead of being silently averaged over.

Where several runs share a seed (a hyperparameter grid), the one with the best dev metric
is kept, as LM-BFF selects. Numbers are percentages; std is the population standard
deviation over seeds (numpy's default, as LM-BFF reports).

Written to --out (default: the first folder): table.md, table.tex, table.csv, runs.csv (every
run, whether its number is in the table, its config hash and git commit), a bar chart of
mean and std per task with every seed as a dot (bar_chart.png), where the runs have several
K a learning curve (learning_curve.png), and where there are peft runs trainable parameters
against the metric (params_accuracy.png). Where runs stored per-example predictions
(predictions/test.parquet), each pair of rows in a column gets a paired significance test, marked
in table.md and table.tex and given in full in significance.csv, and each task and row a
confusion matrix (confusion/*.png; fewtune/predictions/tables.py). --paper adds LM-BFF's Table 3 rows (fewtune/report/paper.py) with the citation;
--wandb logs the table, a per-cell numeric table and the plots to a W&B run (offline unless
WANDB_MODE=online).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fewtune.errors import FewtuneError
from fewtune.report.table import make_table

__all__ = ["main", "make_table"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fewtune.table", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun (or run) folders")
    parser.add_argument("--out", type=Path, default=None, help="where to write the table and plots")
    parser.add_argument(
        "--paper", action="store_true", help="add LM-BFF's Table 3 numbers (Gao et al., 2021)"
    )
    parser.add_argument(
        "--wandb", action="store_true", help="log the table and plots to W&B (offline by default)"
    )
    parser.add_argument(
        "--wandb-project", default="fewtune", help="the W&B project (default: fewtune)"
    )
    parser.add_argument(
        "--costs",
        action="store_true",
        help="also costs.md/.csv: trainable params, storage, step time per method",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=10_000,
        help="bootstrap resamples of the significance test between rows with stored predictions (0: no test)",
    )
    args = parser.parse_args(argv)
    try:
        tables = make_table(
            args.dirs,
            args.out,
            args.paper,
            args.wandb,
            args.wandb_project,
            args.costs,
            args.resamples,
        )
        sys.stdout.write(tables)
    except FewtuneError as err:
        sys.exit(f"error: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
