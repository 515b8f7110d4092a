"""A run's folder: whether it can be written before Hydra makes it, and what interrupted writes
left in it.

Hydra creates ``hydra.run.dir`` (``hydra.sweep.dir`` for -m) before the run's code starts: a
path under a regular file, or on a folder that cannot be written, would end in an OSError
traceback. ``OutputFolderCheck`` (conf/hydra/default.yaml's callbacks) tries first and stops
with one line. Every file a run writes goes through a temporary ``.<name>.<random>`` beside it
and a rename; a process killed mid-write (SIGKILL, a node lost) leaves that temporary file,
which the next run in the folder removes (``remove_partial_writes``).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("fewtune")

# tempfile.mkstemp(prefix=".<name>.") adds 8 characters: ".best.ckpt.k2j_x9ab", ".metrics.json.0f3a8qzx"
PARTIAL_WRITE = re.compile(r"^\.[^.].*\.[A-Za-z0-9]+\.[a-z0-9_]{8}$")


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be made and written to, or None. Makes nothing."""
    folder = Path(folder).expanduser().absolute()
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        return f"cannot write in {parent} ({err.strerror or err})"
    return None


class OutputFolderCheck(Callback):
    """Before Hydra makes the run's (or the sweep's) folder: one line if it cannot."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check("hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check("hydra.sweep.dir", config.hydra.sweep.dir)

    @staticmethod
    def _check(key: str, folder: str) -> None:
        problem = folder_problem(Path(str(folder)))
        if problem:
            # SystemExit: Hydra turns an Exception raised in a callback into a warning and goes on.
            raise SystemExit(
                f"error: {key}={folder}: {problem}; give {key}=<a folder you can write to>"
            )


def remove_partial_writes(out: Path) -> list[Path]:
    """Delete the temporary files of writes that a killed process left in a run's folder."""
    removed = []
    for folder in (out, *(p for p in out.rglob("*") if p.is_dir() and p.name != ".hydra")):
        for path in folder.glob(".*"):
            if path.is_file() and PARTIAL_WRITE.match(path.name):
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        log.info(
            "removed %d file(s) left by an interrupted write: %s",
            len(removed),
            ", ".join(p.name for p in removed),
        )
    return removed
