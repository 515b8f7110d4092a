"""A job stopped by SIGTERM (scancel, a preempted node, ``kill``): it stops at once, and its
failed.json and its last line say that it was stopped, not that it failed, and how to resume it.

Lightning turns SIGTERM into its ``SIGTERMException`` during fit only, and with no message; the
handler here raises it wherever the job is (loading weights, testing), and Lightning's own
handler, installed during fit, calls this one after it has told the other DDP processes.
"""

from __future__ import annotations

import signal
from pathlib import Path

from pytorch_lightning.utilities.exceptions import SIGTERMException

EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


def _raise_stopped(signum, frame) -> None:
    raise SIGTERMException(EXIT_CODE)


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises SIGTERMException (a SystemExit), which the entry point reports."""
    signal.signal(signal.SIGTERM, _raise_stopped)


def stopped_message(out: Path, sweep_dir: str | None = None) -> str:
    """What failed.json says about a job that SIGTERM stopped."""
    resumable = (Path(out) / "checkpoints" / "last.ckpt").is_file()
    where = f"hydra.sweep.dir={sweep_dir} (the same sweep: complete jobs are skipped)" if sweep_dir else f"hydra.run.dir={out}"
    how = "resumes it from its last dev evaluation (checkpoints/last.ckpt)" if resumable else (
        "runs it again (it had no checkpoint to resume from yet)"
    )
    return f"the job was stopped by SIGTERM before it finished; the same command with {where} {how}"
