"""On GPUs only (marker gpu; skipped without CUDA): bf16-mixed training on one GPU, and
trainer=ddp on two GPUs (NCCL) against one GPU on the same weights."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import compose_cfg, tiny_overrides, write_sst2_split

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def on_gpu(model_dir, data_dir, method, *extra) -> list[str]:
    # tiny_overrides pins the CPU; these runs pick the GPU through the trainer config instead.
    return [
        o
        for o in tiny_overrides(model_dir, data_dir, method, *extra)
        if o != "trainer.accelerator=cpu"
    ]


def test_bf16_mixed_training_on_one_gpu(tiny_causal, data_dir, tmp_path):
    import hydra

    from fewtune.run.build import build
    from fewtune.train import train

    cfg = compose_cfg(on_gpu(tiny_causal, data_dir, "prompt", "trainer=gpu"), tmp_path)
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")
    results = train(cfg)
    assert json.loads((tmp_path / "metrics.json").read_text())["test"] == results["test"]
    assert results["peak_gpu_mb"] > 0 and results["steps"] == 4

    # The forward passes ran on the GPU under bfloat16 autocast, with float32 weights (mixed).
    datamodule, module = build(cfg)
    seen = []
    label_logits = module.label_logits

    def spy(batch):
        seen.append(
            (
                batch["input_ids"].device.type,
                torch.is_autocast_enabled("cuda"),
                torch.get_autocast_dtype("cuda"),
            )
        )
        return label_logits(batch)

    module.label_logits = spy
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    trainer.fit(module, datamodule=datamodule)
    assert seen and set(seen) == {("cuda", True, torch.bfloat16)}
    assert next(module.parameters()).dtype == torch.float32


def test_calibration_before_the_trainer_runs_on_the_gpu(tiny_causal, data_dir, tmp_path):
    from fewtune.run.build import build
    from fewtune.scoring.calibration import calibrate_module

    overrides = ("trainer=gpu", "method.calibrate=true", "method.demonstrations.total=2")
    cfg = compose_cfg(on_gpu(tiny_causal, data_dir, "icl", *overrides), tmp_path)
    datamodule, module = build(cfg)
    seen, label_logits = [], module.label_logits

    def spy(batch, *args, **kwargs):
        seen.append(batch["input_ids"].device.type)
        return label_logits(batch, *args, **kwargs)

    module.label_logits = spy
    assert calibrate_module(cfg, module, datamodule)["calibration_sets"] > 1
    assert seen and set(seen) == {"cuda"}


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ddp_on_two_gpus_tests_like_one_gpu(tiny_masked, tmp_path):
    from fewtune.evaluate import evaluate
    from fewtune.run.reload import run_config

    data = write_sst2_split(tmp_path / "data", k=4, seed=13, test_size=16)
    test = data / "k-shot" / "SST-2" / "4-13" / "test.tsv"
    test.write_text(
        "".join(test.read_text().splitlines(keepends=True)[:-1])
    )  # 15: not a multiple of 2
    run = tmp_path / "run"
    args = [
        *on_gpu(tiny_masked, data, "finetune"),
        "trainer=ddp",
        "trainer.accelerator=gpu",
        "trainer.devices=2",
        "eval_batch_size=7",  # uneven: 2 test batches on rank 0, 1 on rank 1
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "fewtune.train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert (
        "distributed_backend=nccl" in result.stdout and "Starting with 2 processes" in result.stdout
    )
    assert run_config(run).trainer.precision == "bf16-mixed"  # trainer=ddp on GPUs
    metrics = json.loads((run / "metrics.json").read_text())
    one_gpu = evaluate(run, ["trainer.devices=1", "trainer.strategy=auto"])
    # bf16 on batches of another make-up may flip a near tie: at most one of the 15 examples.
    assert abs(one_gpu["acc"] - metrics["test"]["acc"]) <= 1 / 15 + 1e-6
    assert sorted(p.name for p in run.glob("*.json")) == ["metrics.json"]
