"""Progress: a rich bar on a terminal, log lines elsewhere, and the multirun's "job i/n" line."""

import logging

import pytest
from omegaconf import OmegaConf

from conftest import compose_cfg, tiny_overrides
from fewtune.errors import FewtuneError
from fewtune.run.progress import JobProgress, LogProgress, progress_callbacks, track


def _cfg(progress: str, enabled: bool = True):
    return OmegaConf.create({"progress": progress, "trainer": {"enable_progress_bar": enabled}})


def test_rich_on_a_terminal_log_lines_elsewhere(monkeypatch):
    from pytorch_lightning.callbacks import RichProgressBar

    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert isinstance(progress_callbacks(_cfg("auto"))[0], RichProgressBar)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    assert isinstance(progress_callbacks(_cfg("auto"))[0], LogProgress)
    assert isinstance(progress_callbacks(_cfg("rich"))[0], RichProgressBar)
    assert progress_callbacks(_cfg("rich", enabled=False)) == []  # Lightning refuses a bar then
    (silent,) = progress_callbacks(_cfg("none"))  # a bar that draws nothing, so Lightning adds none
    assert isinstance(silent, LogProgress) and not silent._enabled
    with pytest.raises(FewtuneError, match="progress='fancy' is unknown"):
        progress_callbacks(_cfg("fancy"))


def test_track_is_silent_off_a_terminal():
    items = list(range(100))
    assert track(items, "runs") is items


def test_a_run_off_a_terminal_logs_each_dev_evaluation(tiny_causal, data_dir, tmp_path, caplog):
    from fewtune.train import train

    overrides = tiny_overrides(
        tiny_causal, data_dir, "prompt", "trainer.enable_progress_bar=true", "progress=log"
    )
    with caplog.at_level(logging.INFO, logger="fewtune"):
        train(compose_cfg(overrides, tmp_path / "run"))
    lines = [r.getMessage() for r in caplog.records if r.name == "fewtune"]
    assert "training: 4 steps, dev every 2 steps" in lines
    steps = [line for line in lines if line.startswith("step ")]
    assert [line.split(":")[0] for line in steps] == ["step 2/4", "step 4/4"]
    assert all("train/loss" in line and "val/acc" in line for line in steps)
    assert "testing: 1 batches" in lines


def test_off_a_terminal_every_phase_says_where_it_is_its_rate_and_the_time_left(
    tiny_causal, data_dir, tmp_path, caplog
):
    from fewtune.train import train

    extra = ("trainer.enable_progress_bar=true", "progress=log", "progress_every_s=0")
    with caplog.at_level(logging.INFO, logger="fewtune"):
        train(
            compose_cfg(tiny_overrides(tiny_causal, data_dir, "prompt", *extra), tmp_path / "run")
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "fewtune"]
    for phase, unit, total in (
        ("training", "step", 4),
        ("dev", "batch", 1),
        ("testing", "batch", 1),
    ):
        beats = [line for line in lines if line.startswith(f"{phase}: {unit} ")]
        assert beats, f"no {phase} heartbeat in {lines}"
        assert f"{unit} {total}/{total}," in beats[-1] and f"s/{unit}" in beats[-1]
        assert beats[-1].endswith("about 0 s left")


def test_multirun_job_line_counts_the_sweep(caplog):
    from hydra.types import RunMode

    callback = JobProgress()
    sweep = {
        "hydra": {
            "sweeper": {"params": {"k": "4,8"}},
            "overrides": {"task": ["method=prompt,zeroshot", "seed=13,21", "model=hf"]},
        }
    }
    callback.on_multirun_start(OmegaConf.create(sweep))
    assert callback.total == 8 and callback.varying == ["k"]
    job = {
        "hydra": {
            "mode": RunMode.MULTIRUN,
            "job": {"num": 2},
            "overrides": {"task": ["k=8", "method=prompt", "seed=21", "model=hf"]},
        },
        "task": {"name": "sst2"},
        "method": {"name": "prompt"},
        "peft": {"name": "lora"},
        "seed": 21,
    }
    with caplog.at_level(logging.INFO, logger="fewtune"):
        callback.on_job_start(OmegaConf.create(job), task_function=None)
        job["hydra"]["mode"] = RunMode.RUN  # a single run says nothing
        callback.on_job_start(OmegaConf.create(job), task_function=None)
    assert [r.getMessage() for r in caplog.records] == ["job 3/8: sst2 prompt+lora seed 21 k=8"]
