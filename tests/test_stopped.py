"""failed.json for a job stopped from outside (SIGTERM, Ctrl-C, submitit's requeue): what stopped
it, in which SLURM job, and how it continues. tests/cluster/ checks the same with a real SLURM."""

import pytest
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from fewtune.jobs.stopped import failure_record

CONTINUE = "run the same command again (a sweep: with the same hydra.sweep.dir)"


@pytest.fixture
def checkpointed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    torch.save(
        {"fewtune_config_hash": "abc", "global_step": 10}, tmp_path / "checkpoints" / "last.ckpt"
    )
    return tmp_path


@pytest.fixture
def outside_slurm(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_an_error_keeps_its_type_and_message(tmp_path):
    assert failure_record(ValueError("bad value"), tmp_path) == {"error": "ValueError: bad value"}


def test_a_sigterm_in_a_slurm_array_says_where_to_continue_from(checkpointed, outside_slurm):
    outside_slurm.setenv("SLURM_JOB_ID", "57")
    outside_slurm.setenv("SLURM_ARRAY_JOB_ID", "55")
    outside_slurm.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert failure_record(SIGTERMException(), checkpointed) == {
        "error": "stopped by SIGTERM (scancel, a preemption or the time limit) in SLURM job 55_2; "
        f"to continue from checkpoints/last.ckpt (step 10), {CONTINUE}",
        "slurm_job": "55_2",
    }


def test_ctrl_c_before_the_first_checkpoint_starts_afresh(tmp_path, outside_slurm):
    record = failure_record(KeyboardInterrupt(), tmp_path)
    assert record == {
        "error": "interrupted (Ctrl-C); no checkpoint yet: the same command again "
        "(a sweep: with the same hydra.sweep.dir) starts it afresh"
    }


def test_submitits_requeue_continues_by_itself(checkpointed, outside_slurm):
    outside_slurm.setenv("SLURM_JOB_ID", "12")
    outside_slurm.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert failure_record(SystemExit(-1), checkpointed)["error"] == (
        "requeued by submitit on SLURM's USR2 signal (near the time limit, or preempted) in SLURM "
        "job 12; SLURM starts it again and it continues from checkpoints/last.ckpt (step 10)"
    )
    outside_slurm.delenv("SUBMITIT_EXECUTOR")  # another exit: nothing requeued it
    assert failure_record(SystemExit(3), checkpointed)["error"].startswith(
        "stopped (SystemExit 3) in SLURM job 12; "
    )
