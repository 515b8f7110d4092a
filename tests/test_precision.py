"""experiment=cpu's precision: bfloat16 autocast where the device computes in bf16, float32 where
torch would only emulate it (hundreds of times slower on an AVX2-only CPU)."""

import pytest
import torch

from conftest import compose_cfg


@pytest.mark.parametrize("preset", ["experiment=cpu", "sweep=lmbff-cpu"])
@pytest.mark.parametrize("native,expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_cpu_presets_use_bf16_only_where_the_cpu_computes_it(
    monkeypatch, tmp_path, preset, native, expected
):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for accelerator in ("cpu", "auto"):  # auto: no GPU, so the CPU decides
        cfg = compose_cfg([preset, f"trainer.accelerator={accelerator}"], tmp_path)
        assert cfg.trainer.precision == expected


@pytest.mark.parametrize("bf16_gpu,expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_gpu_precision_follows_the_gpu_not_the_cpu(monkeypatch, tmp_path, bf16_gpu, expected):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: not bf16_gpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_gpu
    )  # False: e.g. a V100
    for accelerator in ("gpu", "auto"):
        cfg = compose_cfg(["experiment=cpu", f"trainer.accelerator={accelerator}"], tmp_path)
        assert cfg.trainer.precision == expected


def test_an_explicit_precision_wins(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    cfg = compose_cfg(
        ["experiment=cpu", "trainer.accelerator=cpu", "trainer.precision=bf16-mixed"], tmp_path
    )
    assert cfg.trainer.precision == "bf16-mixed"


def test_a_run_records_the_precision_it_resolved_to(monkeypatch, tiny_causal, data_dir, tmp_path):
    """experiment=cpu on a CPU without bf16 kernels trains in float32, and metrics.json says so."""
    from conftest import tiny_overrides
    from fewtune.train import train

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    overrides = tiny_overrides(
        tiny_causal, data_dir, "prompt", "experiment=cpu", "trainer.max_steps=2"
    )
    assert train(compose_cfg(overrides, tmp_path))["precision"] == "32-true"


def test_benchmark_reports_name_whether_the_cpu_has_bf16_kernels(monkeypatch):
    from fewtune.run.hardware import cpu_description

    for native, says in ((True, "bf16 kernels: yes"), (False, "bf16 kernels: no")):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)  # noqa: B023 (used in this iteration)
        assert cpu_description().endswith(says)
