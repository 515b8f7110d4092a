"""The sweep configs (conf/sweep/): LM-BFF's grid, its CPU size and the learning curve, run as
Hydra multiruns with a tiny model, then the table over them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_sst2_split
from fewtune.config import CONF_DIR
from fewtune.report.runs import collect_runs
from fewtune.sample import default_source, sample_task, task_config
from fewtune.table import make_table


def _compose(sweep: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=[f"sweep={sweep}"], return_hydra_config=True)


def test_sweep_configs_hold_lmbffs_grid():
    full = _compose("lmbff")
    assert dict(full.hydra.sweeper.params) == {
        "seed": "13,21,42,87,100",
        "optimizer.lr": "1e-5,2e-5,5e-5",
        "batch_size": "2,4,8",
    }
    assert (full.trainer.max_steps, full.trainer.val_check_interval) == (1000, 100)
    cpu = _compose("lmbff-cpu")
    assert cpu.hydra.sweeper.params.seed == "13,21,42,87,100"
    assert (cpu.trainer.max_steps, cpu.trainer.val_check_interval) == (50, 10)
    assert _compose("curve").hydra.sweeper.params.k == "4,8,16,32,64"


def _multirun(sweep_dir: Path, model: Path, data: Path, *overrides: str) -> None:
    args = [
        "-m",
        "model=hf",
        f"model.path={model}",
        "method=prompt",
        f"paths.data_dir={data}",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "trainer.enable_progress_bar=false",
        f"hydra.sweep.dir={sweep_dir}",
        *overrides,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "fewtune.train", *args], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_grid_keeps_the_best_dev_job_per_seed(tmp_path, tiny_masked):
    data = write_sst2_split(tmp_path / "data", k=4, seed=13)
    sweep = tmp_path / "sweep"
    # The command line narrows the grid: one seed, one batch size, two learning rates.
    _multirun(
        sweep,
        tiny_masked,
        data,
        "sweep=lmbff-cpu",
        "seed=13",
        "optimizer.lr=2e-5,5e-5",
        "batch_size=4",
        "k=4",
    )
    runs = collect_runs([sweep])
    assert sorted(r.path.name for r in runs) == [
        "0_sst2-prompt-seed13-lr2e-05-bs4",
        "1_sst2-prompt-seed13-lr5e-05-bs4",
    ]
    out = make_table([sweep], tmp_path / "table")
    assert "2 of 2 runs complete" in out and "missing" not in out
    best = max(runs, key=lambda r: r.dev)
    row = (tmp_path / "table" / "table.md").read_text().splitlines()[2]
    assert row == f"| Prompt-based FT | {tiny_masked.name} | 4 | {100 * best.test:.1f} |"


@pytest.mark.skipif(not (default_source() / "SST-2").is_dir(), reason="no LM-BFF original data")
def test_a_learning_curve_from_sampled_splits(tmp_path, tiny_masked):
    data = tmp_path / "data"
    sample_task(task_config("sst2"), data, [4, 8], [13], default_source())
    sweep = tmp_path / "curve"
    _multirun(sweep, tiny_masked, data, "sweep=curve", "k=4,8", "seed=13")
    out = make_table([sweep], tmp_path / "table")
    assert "2 of 2 runs complete" in out and "missing" not in out
    assert (tmp_path / "table" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
