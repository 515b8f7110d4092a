"""trainer=ddp through hydra/launcher=slurm: srun starts the two processes (one task per device),
Lightning reads their ranks from SLURM, rank 0 alone writes the results, and the test metric is
that of one process testing the same weights (as tests/test_ddp.py checks for a local run)."""

import json

import pytest
from slurm_jobs import (  # noqa: F401
    array_ids,
    cancel_leftovers,
    node_cpus,
    run_sweep,
    slurm,
    submitit_log,
)

from conftest import write_sst2_split

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("slurm", "cancel_leftovers")]


def test_a_ddp_job_gets_its_ranks_from_srun(tiny_masked, tmp_path):
    from fewtune.evaluate import evaluate

    if node_cpus() < 2:
        pytest.skip("the SLURM node has one CPU: a 2-process DDP job needs two")

    data = write_sst2_split(tmp_path / "data", k=4, seed=13, test_size=16)
    test = data / "k-shot" / "SST-2" / "4-13" / "test.tsv"
    # 15 test examples: a sampler that pads the split would test one of them twice.
    test.write_text("".join(test.read_text().splitlines(keepends=True)[:-1]))
    sweep = tmp_path / "sweep"
    result = run_sweep(
        sweep,
        "trainer=ddp",
        "model=hf",
        f"model.path={tiny_masked}",
        "method=finetune",
        "seed=13",
        "k=4",
        f"paths.data_dir={data}",
        "logger=none",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "optimizer.lr=5e-3",
        "eval_batch_size=7",
        "trainer.enable_progress_bar=false",
        # each process writes the rank Lightning gave it and the SLURM task it runs in
        "+callbacks.ranks._target_=ranks.RecordRanks",
        f"+callbacks.ranks.folder={tmp_path / 'ranks'}",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    (job,) = array_ids(sweep)
    assert (
        "#SBATCH --ntasks-per-node=2"
        in (sweep / ".submitit" / job / f"{job}_submission.sh").read_text()
    )
    ranks = [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank, record in enumerate(ranks):
        assert record["world_size"] == 2
        assert record["cluster_environment"] == "SLURMEnvironment"  # not Lightning's own launcher
        assert record["slurm_procid"] == str(rank) and record["slurm_job_id"] == job
    assert ranks[0]["pid"] != ranks[1]["pid"]
    for rank in (0, 1):  # the srun task, as submitit saw it, ran the job to its end
        log = (sweep / ".submitit" / job / f"{job}_{rank}_log.out").read_text()
        assert f"global_rank={rank}(2)" in log and "Job completed successfully" in log
    assert "Traceback" not in submitit_log(sweep, job)

    run = sweep / "0_sst2-finetune-seed13"
    assert not list(run.glob("train_ddp_process_*.log"))  # Lightning started no process itself
    assert sorted(p.name for p in run.glob("*.json")) == ["metrics.json"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 4
    assert metrics["scored"]["test"] == 15 and metrics["test_complete"]  # both shards counted
    # The same stored weights, tested again by one process.
    assert evaluate(run, ["trainer.devices=1", "trainer.strategy=auto"]) == metrics["test"]
