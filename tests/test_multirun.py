"""A Hydra multirun over methods and seeds, then the table over its output."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import write_sst2_split
from fewtune.report.runs import collect_runs
from fewtune.table import make_table


def sweep_command(model, data, sweep) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fewtune.train",
        "-m",
        "model=hf",
        f"model.path={model}",
        "method=prompt,finetune",
        "seed=13,21",
        "k=4",
        f"paths.data_dir={data}",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={sweep}",
    ]


def run_sweep(model, data, sweep) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        sweep_command(model, data, sweep), capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def multirun_dir(tmp_path_factory, tiny_masked):
    root = tmp_path_factory.mktemp("multirun")
    data = write_sst2_split(root / "data", k=4, seed=13)
    write_sst2_split(root / "data", k=4, seed=21)
    sweep = root / "sweep"
    (root / "output.txt").write_text(run_sweep(tiny_masked, data, sweep))
    return sweep


def test_a_multirun_ends_by_saying_where_its_results_are(multirun_dir):
    lines = (multirun_dir.parent / "output.txt").read_text().strip().splitlines()
    ends = [line for line in lines if "multirun done" in line]
    assert ends and ends[-1].endswith(
        f"multirun done: results in {multirun_dir}; the table: python -m fewtune.table {multirun_dir}"
    )


def test_a_run_that_scored_part_of_the_test_set_is_never_in_the_table(multirun_dir, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(multirun_dir, copy)
    smoke, *_ = sorted(p for p in copy.iterdir() if (p / ".hydra").is_dir())
    metrics = json.loads((smoke / "metrics.json").read_text())
    assert metrics["test_complete"] and metrics["scored"]["test"] == metrics["scored"]["test_size"]
    metrics.update(test_complete=False, scored={"dev": 8, "test": 2, "test_size": 8})
    (smoke / "metrics.json").write_text(json.dumps(metrics))
    out = make_table([copy], tmp_path / "table")
    assert "3 of 4 runs complete" in out
    assert f"smoke run, not in the table (2 of 8 test examples scored): {smoke}" in out
    smoke_run = next(r for r in collect_runs([copy]) if r.path == smoke)
    assert smoke_run.status == "smoke"


def test_the_same_command_again_runs_only_unfinished_jobs(multirun_dir, tiny_masked, tmp_path):
    """A grid killed halfway finishes by running its command again: complete jobs are skipped."""
    copy = tmp_path / "sweep"
    shutil.copytree(multirun_dir, copy)
    killed, *done = sorted(p for p in copy.iterdir() if (p / ".hydra").is_dir())
    stamps = {job: (job / "metrics.json").stat().st_mtime_ns for job in done}
    (killed / "metrics.json").unlink()
    output = run_sweep(tiny_masked, multirun_dir.parent / "data", copy)
    for job in done:
        assert f"skipping {job}: complete" in output
        assert (job / "metrics.json").stat().st_mtime_ns == stamps[job]
    assert f"skipping {killed}" not in output
    assert json.loads((killed / "metrics.json").read_text())["steps"] == 2


def test_multirun_writes_one_folder_per_job(multirun_dir):
    runs = collect_runs([multirun_dir])
    assert sorted((r.method, r.seed) for r in runs) == [
        ("finetune", 13),
        ("finetune", 21),
        ("prompt", 13),
        ("prompt", 21),
    ]
    assert all(r.status == "completed" for r in runs)
    assert len({r.path for r in runs}) == 4


def test_table_has_mean_and_std_over_seeds(multirun_dir, tmp_path):
    out = make_table([multirun_dir], tmp_path)
    lines = (tmp_path / "table.md").read_text().splitlines()
    assert lines[0] == "| Method | Model | K | SST-2 |"
    rows = {
        line.split(" | ")[0].strip("| "): line for line in lines[2:] if line.startswith("|")
    }  # not the notes
    assert set(rows) == {"Fine-tuning", "Prompt-based FT"}
    # each cell is the mean (std) of the two seeds' test accuracy, in percent
    accs = [
        json.loads(p.read_text())["test"]["acc"] for p in multirun_dir.glob("*prompt*/metrics.json")
    ]
    mean = 100 * sum(accs) / 2
    std = 100 * abs(accs[0] - accs[1]) / 2
    assert rows["Prompt-based FT"].endswith(f"| {mean:.1f} ({std:.1f}) |")
    assert (tmp_path / "table.tex").read_text().startswith(r"\begin{tabular}")
    assert (tmp_path / "table.csv").read_text().startswith("Method,Model,K,SST-2")
    assert "4 of 4 runs complete" in out


def test_table_reports_failed_incomplete_and_missing_jobs(multirun_dir, tiny_masked, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(multirun_dir, copy)
    jobs = sorted(p for p in copy.iterdir() if (p / ".hydra").is_dir())
    (jobs[0] / "metrics.json").unlink()  # killed mid-run
    (jobs[1] / "metrics.json").unlink()
    (jobs[1] / "failed.json").write_text(json.dumps({"error": "boom"}))
    shutil.rmtree(jobs[2])  # never started
    out = make_table([copy], tmp_path / "out")
    assert "1 of 3 runs complete" in out
    assert f"incomplete (killed or still running): {jobs[0]}" in out
    assert f"failed: {jobs[1]} (boom)" in out
    assert "missing:" in out and out.count("missing:") == 1
    # a cell with fewer seeds than were run says so instead of passing for a full average
    rows = (tmp_path / "out" / "table.md").read_text().splitlines()[2:]
    assert rows[0].startswith("| Fine-tuning |") and rows[0].endswith(" [1/2 seeds] |")
    assert rows[1] == f"| Prompt-based FT | {tiny_masked.name} | 4 | - |"


def test_table_cli_error_for_a_missing_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fewtune.table", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: {tmp_path / 'none'} is not a folder; give a multirun folder (outputs/multiruns/<date>)"
    )


def test_peft_runs_are_rows_of_their_own(tmp_path):
    """A LoRA grid is not averaged together with full fine-tuning."""
    from omegaconf import OmegaConf

    for i, (peft, acc) in enumerate([("none", 0.9), ("lora", 0.7), ("none", 0.8), ("lora", 0.6)]):
        run = tmp_path / f"{i}"
        (run / ".hydra").mkdir(parents=True)
        cfg = {
            "task": {"name": "sst2", "title": "SST-2", "metric": "acc"},
            "method": {"name": "prompt", "title": "Prompt-based FT"},
            "peft": {"name": peft, "title": "LoRA" if peft == "lora" else "Full"},
            "model": {"name": "m"},
            "k": 16,
            "seed": 13 + i // 2,
        }
        OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
        (run / "metrics.json").write_text(json.dumps({"test": {"acc": acc}, "best_dev": 0.5}))
    make_table([tmp_path], tmp_path / "out")
    rows = (tmp_path / "out" / "table.md").read_text().splitlines()[2:]
    assert rows[0] == "| Prompt-based FT | m | 16 | 85.0 (5.0) |"
    assert rows[1] == "| Prompt-based FT + LoRA | m | 16 | 65.0 (5.0) |"
