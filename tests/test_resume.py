"""Resumable jobs: a job killed mid-training continues from its last dev evaluation, a complete
job is skipped, a changed config is not; the table reports resumable jobs and traces its numbers."""

import json
import logging
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_cfg, tiny_overrides
from fewtune.jobs import provenance
from fewtune.jobs.resume import config_hash
from fewtune.models.base import FewShotModule
from fewtune.table import make_table
from fewtune.train import train


class Crash(RuntimeError):
    pass


def record_steps(monkeypatch, crash_at: int | None = None) -> list[int]:
    """The global step at the start of each training step; raises (a simulated crash) at ``crash_at``."""
    seen = []
    original = FewShotModule.training_step

    def step(self, batch, batch_idx):
        seen.append(self.trainer.global_step)
        if self.trainer.global_step == crash_at:
            raise Crash(f"killed at step {crash_at}")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(FewShotModule, "training_step", step)
    return seen


@pytest.mark.parametrize(("method", "peft"), [("prompt", "none"), ("finetune", "lora")])
def test_a_killed_job_resumes_from_its_last_dev_evaluation(
    method, peft, data_dir, tiny_masked, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    overrides = tiny_overrides(tiny_masked, data_dir, method, f"peft={peft}", "trainer.max_steps=8")
    with monkeypatch.context() as patch:
        record_steps(patch, crash_at=5)
        with pytest.raises(Crash):
            train(compose_cfg(overrides, run))
    last = run / "checkpoints" / "last.ckpt"
    assert not (run / "metrics.json").exists()
    assert sorted(p.name for p in last.parent.iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]  # no temporary files left
    saved = torch.load(last, map_location="cpu", weights_only=False)
    assert saved["global_step"] == 4  # dev evaluations at steps 2 and 4
    assert saved["optimizer_states"] and saved["lr_schedulers"]
    if peft != "none":  # only the trained weights, not the frozen backbone
        assert all("lora" in k or "classifier" in k for k in saved["state_dict"])
    best_state = next(v for k, v in saved["callbacks"].items() if k.startswith("ModelCheckpoint"))
    best_before = float(best_state["best_model_score"])
    (run / "failed.json").write_text('{"error": "Crash"}')  # as main() leaves it

    # The rerun's dev evaluations are all worse: only the restored best-checkpoint state can give best_before.
    def worse_dev(self):
        self.val_metrics.reset()
        self.log("val/acc", -1.0)

    monkeypatch.setattr(FewShotModule, "on_validation_epoch_end", worse_dev)
    seen = record_steps(monkeypatch)
    results = train(compose_cfg(overrides, run))
    assert seen == [4, 5, 6, 7]  # continued, not from step 0
    assert results["steps"] == 8 and results["resumed_from_step"] == 4
    assert results["best_dev"] == pytest.approx(best_before)
    assert json.loads((run / "metrics.json").read_text()) == results
    assert not (run / "failed.json").exists()
    assert not last.exists()  # large, and no longer needed
    kept = run / ("checkpoints/best.ckpt" if peft == "none" else "task_weights.safetensors")
    assert kept.is_file()


def test_resume_checkpoint_false_writes_no_last_checkpoint(
    data_dir, tiny_masked, tmp_path, monkeypatch
):
    run = tmp_path / "run"
    overrides = tiny_overrides(
        tiny_masked, data_dir, "prompt", "trainer.max_steps=8", "resume_checkpoint=false"
    )
    record_steps(monkeypatch, crash_at=5)
    with pytest.raises(Crash):
        train(compose_cfg(overrides, run))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt"]


def test_a_complete_job_is_skipped_and_a_changed_one_is_not(
    data_dir, tiny_masked, tmp_path, monkeypatch, caplog
):
    run = tmp_path / "run"
    overrides = tiny_overrides(tiny_masked, data_dir, "prompt")
    first = train(compose_cfg(overrides, run))
    assert len(first["config_hash"]) == 16 and first["resumed_from_step"] is None
    assert set(first["provenance"]) == {"versions", "git", "data"}
    assert not (run / "checkpoints" / "last.ckpt").exists()

    def no_model(cfg):
        raise Crash("the model was loaded")

    monkeypatch.setattr("fewtune.run.build.build", no_model)
    stamp = (run / "metrics.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="fewtune"):
        # logging and progress settings do not change results: still the same job
        again = train(
            compose_cfg(overrides + ["logger=csv", "trainer.enable_progress_bar=true"], run)
        )
    assert again == first
    assert f"skipping {run}: complete" in caplog.text
    assert (run / "metrics.json").stat().st_mtime_ns == stamp

    with pytest.raises(Crash):  # another learning rate is another job
        train(compose_cfg(overrides + ["optimizer.lr=1e-3"], run))
    assert json.loads((run / "metrics.previous.json").read_text()) == first

    legacy = {k: v for k, v in first.items() if k != "config_hash"}
    (run / "metrics.json").write_text(json.dumps(legacy))
    caplog.clear()
    with pytest.raises(Crash):  # a result from before config hashes is rerun, and says why
        train(compose_cfg(overrides, run))
    assert "has no config_hash" in caplog.text


def test_the_hash_ignores_where_things_go_but_not_the_data(data_dir, tiny_masked, tmp_path):
    def hash_of(*extra, data=data_dir, out=tmp_path / "a"):
        cfg = compose_cfg(tiny_overrides(tiny_masked, data, "prompt", *extra), out)
        return config_hash(cfg, provenance.data_files(cfg))

    base = hash_of()
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    assert hash_of(data=copy, out=tmp_path / "b") == base
    assert hash_of("logger=wandb", "delete_checkpoints=true", "resume=false") == base
    assert hash_of("batch_size=4") != base
    assert hash_of("seed=21", "data_seed=13") != base
    # the task's PET patterns matter to method=pet only
    assert hash_of("task.pet_templates.masked=[x]") == base
    (copy / "k-shot/SST-2/4-13/train.tsv").open("a").write("one more great film\t1\n")
    assert hash_of(data=copy) != base


def test_the_table_reports_resumable_jobs_and_lists_its_runs(tmp_path):
    def job(name, seed, acc=None, dev=None, error=None, last=False):
        run = tmp_path / "sweep" / name
        (run / ".hydra").mkdir(parents=True)
        cfg = {
            "task": {"name": "sst2", "title": "SST-2", "metric": "acc"},
            "method": {"name": "prompt"},
            "peft": {"name": "none"},
            "model": {"name": "m"},
            "k": 16,
            "seed": seed,
        }
        OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
        if acc is not None:
            git = {"commit": "abc123", "dirty": False}
            metrics = {
                "test": {"acc": acc},
                "best_dev": dev,
                "config_hash": f"h{name}",
                "provenance": {"git": git},
            }
            (run / "metrics.json").write_text(json.dumps(metrics))
        if error:
            (run / "failed.json").write_text(json.dumps({"error": error}))
        if last:
            (run / "checkpoints").mkdir()
            (run / "checkpoints" / "last.ckpt").write_bytes(b"")
        return run

    good = job("0", 13, acc=0.9, dev=0.8)
    worse = job("1", 13, acc=0.7, dev=0.6)
    killed = job("2", 21, error="KeyboardInterrupt: ", last=True)
    out = make_table([tmp_path / "sweep"], tmp_path / "out")
    assert (
        f"incomplete (resumable from checkpoints/last.ckpt; last error: KeyboardInterrupt: ): {killed}"
        in out
    )
    assert "failed:" not in out
    lines = (tmp_path / "out" / "runs.csv").read_text().splitlines()
    assert (
        lines[0]
        == "task,method,model,k,seed,status,in_table,test,best_dev,config_hash,commit,dirty,run"
    )
    assert lines[1:] == [
        f"sst2,prompt,m,16,13,completed,yes,0.9,0.8,h0,abc123,False,{good}",
        f"sst2,prompt,m,16,13,completed,no,0.7,0.6,h1,abc123,False,{worse}",
        f"sst2,prompt,m,16,21,incomplete,no,,,,,,{killed}",
    ]
