"""The launchers of conf/hydra/launcher/: local (joblib, parallel jobs) and slurm (submitit)."""

import os
import re
import subprocess
import sys
import threading
from datetime import datetime

from fewtune.errors import FewtuneError


def _log_span(log_file) -> tuple[datetime, datetime]:
    """First and last time stamp of a job's Hydra log."""
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", log_file.read_text(), re.M)
    times = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in stamps]
    return times[0], times[-1]


def test_local_launcher_runs_two_jobs_at_once_in_their_own_folders(tmp_path, tiny_masked, data_dir):
    args = [
        "-m",
        "hydra/launcher=local",
        "model=hf",
        f"model.path={tiny_masked}",
        "method=prompt,finetune",
        "k=4",
        "seed=13",
        f"paths.data_dir={data_dir}",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "trainer.enable_progress_bar=false",
    ]
    # The default sweep folder (date and time with microseconds), under a log dir of the test's own.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FEWTUNE_LOG_DIR": str(tmp_path / "outputs")}
    result = subprocess.run(
        [sys.executable, "-m", "fewtune.train", *args], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2," in result.stdout + result.stderr
    (sweep,) = (
        tmp_path / "outputs" / "multiruns"
    ).iterdir()  # both jobs resolved the same sweep folder
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_sst2-prompt-seed13", "1_sst2-finetune-seed13"]
    assert all((job / "metrics.json").is_file() for job in jobs)
    assert not list(sweep.glob("*/failed.json"))
    # the two jobs ran at the same time, in two worker processes
    (start0, end0), (start1, end1) = (_log_span(job / "train.log") for job in jobs)
    assert start0 < end1 and start1 < end0


def _launcher(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins

    from fewtune.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    before = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} in the sweep folder resolves through it
    try:
        return Plugins.instance()._instantiate(
            cfg.hydra.launcher
        )  # as Hydra builds the launcher of -m
    finally:
        HydraConfig.instance().cfg = before  # later tests see no Hydra run


def test_slurm_launcher_extends_submitit_and_follows_the_trainer():
    launcher = _launcher(
        [
            "hydra/launcher=slurm",
            "trainer=ddp",
            "trainer.accelerator=gpu",
            "trainer.devices=4",
            "hydra.launcher.partition=gpu",
        ]
    )
    assert type(launcher).__name__ == "SlurmLauncher"
    params = launcher.params
    assert (params["partition"], params["tasks_per_node"], params["gpus_per_node"]) == ("gpu", 4, 4)
    assert (
        params["timeout_min"],
        params["cpus_per_task"],
        params["mem_gb"],
        params["array_parallelism"],
    ) == (60, 4, 32, 64)
    assert params["qos"] is None  # the plugin's own settings are still there
    cpu = _launcher(["hydra/launcher=slurm"]).params
    assert (cpu["tasks_per_node"], cpu["gpus_per_node"]) == (1, None)


def test_local_launcher_is_joblib_with_two_workers():
    launcher = _launcher(["hydra/launcher=local"])
    assert type(launcher).__name__ == "JoblibLauncher"
    assert launcher.joblib["n_jobs"] == 2


def test_a_job_in_a_thread_is_refused():
    from fewtune.run.workers import require_own_process

    errors = []

    def job():
        try:
            require_own_process()
        except FewtuneError as err:
            errors.append(str(err))

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "process of its own" in errors[0]
    require_own_process()  # the main thread is fine
