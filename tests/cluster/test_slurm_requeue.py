"""Preemption and cancellation of a sweep's SLURM jobs, for real.

One array of three jobs, each step slowed down (pace.Pace) so that the test can act while they
train:
- job 0 gets USR2, the signal SLURM sends ``signal_delay_s`` before the time limit: submitit's
  handler requeues it, and the requeued job continues from checkpoints/last.ckpt;
- job 1 is cancelled with scancel: its failed.json says so, and how to continue;
- job 2 names a split that does not exist: it fails at once and the others go on.
Running the sweep's command again finishes only job 1 (from its checkpoint) and fails job 2
again. Both trained jobs end with exactly the losses and metrics of the same grid run through
without interruption.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_jobs import (  # noqa: F401
    array_ids,
    cancel_leftovers,
    in_queue,
    run_sweep,
    slurm,
    start_sweep,
    submitit_log,
    wait_for,
)

from conftest import write_sst2_split

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("slurm", "cancel_leftovers")]
STEPS, DEV_EVERY = 30, 5


def paced(model, data, seeds: str) -> list[str]:
    return [
        "model=hf",
        f"model.path={model}",
        "method=prompt",
        f"seed={seeds}",
        "k=4",
        f"paths.data_dir={data}",
        "trainer.accelerator=cpu",
        f"trainer.max_steps={STEPS}",
        f"trainer.val_check_interval={DEV_EVERY}",
        "optimizer.lr=5e-3",
        "trainer.enable_progress_bar=false",
        "progress=log",
        # every step's loss in csv/version_*/metrics.csv
        "logger=csv",
        "trainer.log_every_n_steps=1",
        "+callbacks.pace._target_=pace.Pace",
        "+callbacks.pace.seconds=0.4",
    ]


def losses(run) -> dict[str, str]:
    """step -> train/loss as logged; a resumed job's later attempt overrides the steps it redid."""
    by_step = {}
    for path in sorted((run / "csv").glob("version_*/metrics.csv")):
        for row in csv.DictReader(path.open()):
            if row.get("train/loss"):
                by_step[row["step"]] = row["train/loss"]
    return by_step


def metrics(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_a_preempted_job_resumes_and_a_cancelled_one_finishes_when_the_sweep_runs_again(
    tiny_masked, tmp_path
):
    data = write_sst2_split(tmp_path / "data", k=4, seed=13)
    write_sst2_split(tmp_path / "data", k=4, seed=21)
    # The same jobs, uninterrupted, one after the other by Hydra's basic launcher, meanwhile.
    reference = start_sweep(
        tmp_path / "reference", *paced(tiny_masked, data, "13,21"), slurm_launcher=False
    )
    sweep = tmp_path / "sweep"
    grid = paced(tiny_masked, data, "13,21,99")
    driver = start_sweep(sweep, *grid)
    preempted, cancelled, bad = (
        sweep / name
        for name in ("0_sst2-prompt-seed13", "1_sst2-prompt-seed21", "2_sst2-prompt-seed99")
    )
    (array,) = wait_for(lambda: array_ids(sweep), "the sweep's sbatch", timeout=120)
    assert (
        "#SBATCH --signal=USR2@120"
        in (sweep / ".submitit" / array / f"{array}_submission.sh").read_text()
    )

    wait_for(
        lambda: (preempted / "checkpoints" / "last.ckpt").is_file(), "job 0's first dev evaluation"
    )
    subprocess.run(["scancel", "--signal=USR2", f"{array}_0"], check=True, timeout=60)
    wait_for(
        lambda: (cancelled / "checkpoints" / "last.ckpt").is_file(), "job 1's first dev evaluation"
    )
    subprocess.run(["scancel", f"{array}_1"], check=True, timeout=60)
    # SLURM holds a requeued job for two minutes (BeginTime); let it start at once.
    wait_for(lambda: ["0", "PENDING", "BeginTime"] in in_queue(array), "job 0 requeued")
    subprocess.run(
        ["scontrol", "update", f"JobId={array}_0", "StartTime=now"], check=True, timeout=60
    )
    wait_for(
        lambda: (preempted / "metrics.json").is_file() and not in_queue(array), "the array to end"
    )
    # Without accounting, submitit cannot learn that job 1 was cancelled: the driver would wait
    # for it forever.
    driver.terminate()
    driver.wait(timeout=60)

    log = submitit_log(sweep, f"{array}_0")
    assert "Caught signal SIGUSR2" in log and "Calling checkpoint method" in log
    assert (
        log.count(f"Starting with JobEnvironment(job_id={array}_0,") == 2
    )  # the job and its requeued run
    first = metrics(preempted)
    assert first["steps"] == STEPS and 0 < first["resumed_from_step"] < STEPS
    assert not (
        preempted / "failed.json"
    ).exists()  # the requeued run removed the first run's record
    stopped = json.loads((cancelled / "failed.json").read_text())
    assert stopped["slurm_job"] == f"{array}_1"
    assert stopped["error"].startswith(
        f"stopped by SIGTERM (scancel, a preemption or the time limit) in SLURM job {array}_1; "
    )
    assert "run the same command again (a sweep: with the same hydra.sweep.dir)" in stopped["error"]
    step = int(stopped["error"].split("last.ckpt (step ")[1].split(")")[0])
    assert "no split for K=4, seed=99" in json.loads((bad / "failed.json").read_text())["error"]

    stamp = (preempted / "metrics.json").stat().st_mtime_ns
    again = run_sweep(sweep, *grid)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    rerun = array_ids(sweep)[-1]
    assert f"skipping {preempted}: complete" in submitit_log(sweep, f"{rerun}_0")
    assert (preempted / "metrics.json").stat().st_mtime_ns == stamp
    assert metrics(cancelled)["resumed_from_step"] == step and metrics(cancelled)["steps"] == STEPS
    assert not (cancelled / "failed.json").exists()
    assert (bad / "failed.json").is_file() and not (bad / "metrics.json").exists()

    assert reference.wait(timeout=900) == 0, Path(f"{tmp_path / 'reference'}.log").read_text()[
        -3000:
    ]
    for run, through in ((preempted, "0_sst2-prompt-seed13"), (cancelled, "1_sst2-prompt-seed21")):
        uninterrupted = tmp_path / "reference" / through
        assert len(losses(run)) == STEPS and losses(run) == losses(uninterrupted)
        for key in ("test", "best_dev", "config_hash"):
            assert metrics(run)[key] == metrics(uninterrupted)[key]

    table = subprocess.run(
        [sys.executable, "-m", "fewtune.table", str(sweep)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert table.returncode == 0, table.stderr[-3000:]
    assert "2 of 3 runs complete" in table.stdout
    assert f"failed: {bad} (task 'sst2': no split for K=4, seed=99" in table.stdout
