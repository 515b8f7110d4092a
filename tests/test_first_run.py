"""What a newcomer's first commands print: help that explains fewtune, a console that ends with
the result, libraries' chatter in the run's log file only."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import tiny_overrides
from fewtune.config import CONF_DIR

GROUPS_USERS_PICK = sorted(
    p.name
    for p in CONF_DIR.iterdir()
    if p.is_dir() and p.name not in ("hydra", "paths", "callbacks")
)


def fewtune_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("WANDB_SILENT", None)  # fewtune itself must keep W&B quiet
    command = [sys.executable, "-m", "fewtune.train", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_help_explains_every_group_and_gives_the_first_commands(tmp_path):
    result = fewtune_train("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    groups = result.stdout.split("== Groups (group=option) ==")[1].split("==")[0]
    described = {
        line.split()[0] for line in groups.splitlines() if line.startswith("  ") and line[2] != " "
    }
    assert described == set(GROUPS_USERS_PICK)
    for command in ("experiment=cpu debug=fast", "python -m fewtune.table", "-m experiment=cpu"):
        assert command in result.stdout
    assert "== Config ==" not in result.stdout  # no config dump in place of an explanation


def test_a_run_off_a_terminal_ends_with_its_result_and_logs_the_chatter(
    tiny_masked, data_dir, tmp_path
):
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(
        tiny_masked, data_dir, "finetune", "logger=wandb", f"hydra.run.dir={run_dir}"
    )
    result = fewtune_train(*overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    console = (result.stdout + result.stderr).strip().splitlines()
    assert "sst2 test acc = " in console[-1] and "(best dev " in console[-1]
    chatter = ("GPU available", "TPU available", "litlogger", "LOAD REPORT", "wandb:", "LeafSpec")
    assert not [line for line in console if any(word in line for word in chatter)]
    log_file = (run_dir / "train.log").read_text()
    assert "GPU available" in log_file and "LOAD REPORT" in log_file
    assert "\x1b[" not in log_file  # no terminal colour codes in a file
