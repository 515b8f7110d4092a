"""The results of runs without their checkpoints and logs: a folder small enough to commit.

    python -m fewtune.archive <multirun dir> [more dirs] --out results

Copies into ``<out>/<each folder's name>`` what ``python -m fewtune.table`` reads back (each
run's .hydra/config.yaml and overrides.yaml, its JSON results such as metrics.json or
failed.json, and each multirun.yaml), keeping the folders' layout, so the table is rebuilt later
on any machine:
``python -m fewtune.table results/<folder's name>``. About 4 KB per run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fewtune.errors import FewtuneError
from fewtune.jobs.archive import archive

__all__ = ["archive", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fewtune.archive", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun (or run) folders")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="copy each folder into <out>/<its name>, e.g. --out results",
    )
    parser.add_argument(
        "--no-predictions", action="store_true", help="leave out the per-example predictions"
    )
    args = parser.parse_args(argv)
    try:
        copied = archive(args.dirs, args.out, predictions=not args.no_predictions)
    except FewtuneError as err:
        sys.exit(f"error: {err}")
    print(f"{copied} files of {len(args.dirs)} folder(s) copied to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
