"""Ensembles of finished runs from their stored predictions, without running any model.

    python -m fewtune.ensemble <run or multirun dirs> --out DIR [--name NAME] [--title TITLE] [--by seed|none]

The members' label probabilities (the score, for a regression task) are averaged per test and
dev example, as LM-BFF ensembles its templates; the result is a run folder under --out with its
own metrics.json and predictions, which ``python -m fewtune.table`` shows as a row. --by seed
(the default): one ensemble per seed, of that seed's runs (the table's mean (std) over seeds);
--by none: one ensemble of every run given (e.g. a method's five seeds). fewtune/predictions/ensemble.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fewtune.errors import FewtuneError


def main(argv: list[str] | None = None) -> int:
    from fewtune.predictions.ensemble import BY, ensemble

    parser = argparse.ArgumentParser(
        prog="python -m fewtune.ensemble", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="finished runs, or folders holding them")
    parser.add_argument("--out", type=Path, required=True, help="where the ensemble run folders go")
    parser.add_argument(
        "--name", default="ensemble", help="the table's method key (default: ensemble)"
    )
    parser.add_argument(
        "--title", default=None, help="the table's method title (default: Ensemble of N runs)"
    )
    parser.add_argument(
        "--by", choices=BY, default="seed", help="one ensemble per seed (default), or one of all"
    )
    args = parser.parse_args(argv)
    try:
        folders = ensemble(args.dirs, args.out, args.name, args.title, args.by)
    except FewtuneError as err:
        sys.exit(f"error: {err}")
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        print(
            f"{folder}: {len(metrics['ensemble']['members'])} runs, test {metrics['metric']} {metrics['test'][metrics['metric']]:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
