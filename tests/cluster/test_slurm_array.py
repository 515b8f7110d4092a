"""A grid through hydra/launcher=slurm, for real: one sbatch array, each job in its own folder,
and the same table as the grid run one job after the other by Hydra's basic launcher."""

import csv
import io
import json
import subprocess
import sys

import pytest
from slurm_jobs import (  # noqa: F401
    QueueWatch,
    array_ids,
    cancel_leftovers,
    node_cpus,
    run_sweep,
    slurm,
    submitit_log,
)

from conftest import write_sst2_split

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("slurm", "cancel_leftovers")]


def grid(model, data) -> list[str]:
    return [
        "model=hf",
        f"model.path={model}",
        "method=prompt,finetune",
        "seed=13,21",
        "k=4",
        f"paths.data_dir={data}",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false",
    ]


def table(sweep, out) -> tuple[str, str, list[dict]]:
    result = subprocess.run(
        [sys.executable, "-m", "fewtune.table", str(sweep), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    return result.stdout, (out / "table.md").read_text(), runs


def without_folder(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "run"} for row in rows]


def test_a_grid_runs_as_one_slurm_array_and_tables_like_the_basic_launcher(tiny_masked, tmp_path):
    data = write_sst2_split(tmp_path / "data", k=4, seed=13)
    write_sst2_split(tmp_path / "data", k=4, seed=21)
    sweep = tmp_path / "slurm"
    with QueueWatch() as queue:
        result = run_sweep(sweep, *grid(tiny_masked, data))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    (array,) = array_ids(sweep)  # one submission for the whole grid
    assert (
        "#SBATCH --array=0-3"
        in (sweep / ".submitit" / array / f"{array}_submission.sh").read_text()
    )
    assert queue.running == {(array, str(task)) for task in range(4)}  # squeue saw each task run
    assert queue.most_at_once == min(4, node_cpus())  # one CPU each
    jobs = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert [p.name for p in jobs] == [
        "0_sst2-prompt-seed13",
        "1_sst2-prompt-seed21",
        "2_sst2-finetune-seed13",
        "3_sst2-finetune-seed21",
    ]
    for task, job in enumerate(jobs):
        assert f"JobEnvironment(job_id={array}_{task}," in submitit_log(sweep, f"{array}_{task}")
        assert json.loads((job / "metrics.json").read_text())["steps"] == 4
        assert not (job / "failed.json").exists()

    basic = tmp_path / "basic"
    reference = run_sweep(basic, *grid(tiny_masked, data), slurm_launcher=False)
    assert reference.returncode == 0, reference.stderr[-3000:]
    said, markdown, runs = table(sweep, tmp_path / "table-slurm")
    _, basic_markdown, basic_runs = table(basic, tmp_path / "table-basic")
    assert "4 of 4 runs complete" in said
    assert markdown == basic_markdown
    assert len(runs) == 4
    assert without_folder(runs) == without_folder(basic_runs)  # the same numbers and config hashes
