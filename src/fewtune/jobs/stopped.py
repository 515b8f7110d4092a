"""What failed.json says about a job that raised or was stopped from outside, and for a stopped
one, how to continue it.

A job is stopped from outside by a SIGTERM (``scancel``, a preemption, SLURM's time limit: Lightning
turns it into ``SIGTERMException`` at the next batch), by Ctrl-C, or by a signal handler that
exits (submitit's, after it has requeued the job on its pre-timeout signal). Its folder keeps
``checkpoints/last.ckpt`` from its last dev evaluation, so the same command again continues it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from pytorch_lightning.utilities.exceptions import SIGTERMException

from fewtune.jobs.resume import CHECKPOINT_DIR, LAST, checkpoint_stamp

SAME_SWEEP = "a sweep: with the same hydra.sweep.dir"
EXIT_CODE = 128 + signal.SIGTERM  # what a shell reports for a process ended by SIGTERM


def _raise_stopped(signum, frame) -> None:
    raise SIGTERMException(EXIT_CODE)


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises SIGTERMException wherever the job is (loading weights, testing),
    not only during fit; Lightning's own handler, installed during fit, calls this one after it
    has told the other DDP processes. Not under submitit: its handlers own the job's signals
    (SIGTERM must not end a job that submitit is checkpointing for its requeue)."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        return
    signal.signal(signal.SIGTERM, _raise_stopped)


def failure_record(err: BaseException, out: Path) -> dict[str, Any]:
    """failed.json's content for an error that is not a FewtuneError."""
    if isinstance(err, Exception):
        return {"error": f"{type(err).__name__}: {err}"}
    requeued = _requeued_by_submitit(err)
    how = (
        "requeued by submitit on SLURM's USR2 signal (near the time limit, or preempted)"
        if requeued
        else _how_stopped(err)
    )
    record: dict[str, Any] = {"error": f"{how}{_in_slurm_job()}; {_how_to_continue(out, requeued)}"}
    if (job := slurm_job_id()) is not None:
        record["slurm_job"] = job
    return record


def slurm_job_id() -> str | None:
    """This SLURM job's id as squeue and scancel name it ("12" or, in an array, "12_3")."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def _requeued_by_submitit(err: BaseException) -> bool:
    # submitit's USR2 handler requeues the job, then leaves with sys.exit(-1)
    return (
        isinstance(err, SystemExit)
        and err.code == -1
        and os.environ.get("SUBMITIT_EXECUTOR") == "slurm"
    )


def _how_stopped(err: BaseException) -> str:
    if isinstance(err, SIGTERMException):
        return "stopped by SIGTERM (scancel, a preemption or the time limit)"
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"stopped ({type(err).__name__} {getattr(err, 'code', '')})".replace(" )", ")")


def _in_slurm_job() -> str:
    job = slurm_job_id()
    return f" in SLURM job {job}" if job else ""


def _how_to_continue(out: Path, requeued: bool) -> str:
    last = out / CHECKPOINT_DIR / f"{LAST}.ckpt"
    stamp = checkpoint_stamp(last) if last.is_file() else None
    if requeued:
        where = (
            f"from {CHECKPOINT_DIR}/{LAST}.ckpt (step {stamp['step']})"
            if stamp
            else "from step 0 (no checkpoint yet)"
        )
        return f"SLURM starts it again and it continues {where}"
    where = _same_folder(out)
    if stamp is None:
        return f"no checkpoint yet: the same command again ({where}) starts it afresh"
    return (
        f"to continue from {CHECKPOINT_DIR}/{LAST}.ckpt (step {stamp['step']}), "
        f"run the same command again ({where})"
    )


def _same_folder(out: Path) -> str:
    """How the same command finds the job's folder again: a sweep's job is found by its number
    in the same hydra.sweep.dir, but a single run's folder is timestamped, so it must be named."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.RUN:
        return f"with hydra.run.dir={out}"
    return SAME_SWEEP
