"""A results folder small enough to commit: the files of runs that ``python -m fewtune.table``
reads back (each run's .hydra/config.yaml and overrides.yaml, its JSON results such as
metrics.json or failed.json, its per-example predictions predictions/*.parquet, and each
multirun.yaml), without checkpoints and logs: the table, its significance marks and ensembles
are rebuilt from them on any machine.
"""

from __future__ import annotations

from pathlib import Path

from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_file_atomic

SKIPPED_FOLDERS = {
    "checkpoints",
    "wandb",
}  # W&B's own JSON files: large, and the table does not read them


def kept_files(root: Path, predictions: bool = True) -> list[Path]:
    """The files below ``root`` that the table reads, relative to ``root``."""

    def read_by_table(path: Path) -> bool:
        if path.parent.name == ".hydra":
            return path.name in ("config.yaml", "overrides.yaml")
        if path.parent.name == "predictions":
            return predictions and path.suffix == ".parquet"
        return path.name == "multirun.yaml" or path.suffix == ".json"

    relatives = (path.relative_to(root) for path in sorted(root.rglob("*")) if path.is_file())
    return [rel for rel in relatives if read_by_table(rel) and not SKIPPED_FOLDERS & set(rel.parts)]


def archive(roots: list[Path], out: Path, predictions: bool = True) -> int:
    """Copy the kept files of every root into ``out/<root's name>``; returns how many."""
    copied = 0
    for root in roots:
        if not root.is_dir():
            raise FewtuneError(
                f"{root} is not a folder; give a multirun folder (outputs/multiruns/<name>)"
            )
        files = kept_files(root, predictions)
        if not any(f.name == "config.yaml" for f in files):
            raise FewtuneError(
                f"no runs (folders with .hydra/config.yaml) under {root}; nothing to archive"
            )
        for relative in files:
            write_file_atomic(out / root.name / relative, (root / relative).read_bytes())
        copied += len(files)
    return copied
