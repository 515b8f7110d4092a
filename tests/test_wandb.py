"""W&B offline: one run per job, grouped by task-model-method-K, named by seed, config logged."""

import pytest

from conftest import compose_cfg, tiny_overrides
from fewtune.train import train


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_each_job_is_its_own_offline_run(wandb_env, data_dir, tiny_masked, tmp_path):
    import wandb

    from fewtune.run.loggers import finish_wandb

    names = []
    for seed in (13, 21):
        overrides = tiny_overrides(
            tiny_masked, data_dir, "prompt", f"seed={seed}", "data_seed=13", "logger=wandb"
        )
        cfg = compose_cfg(overrides, tmp_path / f"run{seed}")
        try:
            train(cfg)
            run = wandb.run
            names.append((run.name, run.group, run.config["seed"], run.config["task"]["name"]))
        finally:
            finish_wandb()
        assert wandb.run is None
        assert list((tmp_path / f"run{seed}" / "wandb").glob("offline-run-*"))
    group = f"sst2-{tiny_masked.name}-prompt-k4"
    assert names == [("seed13", group, 13, "sst2"), ("seed21", group, 21, "sst2")]
