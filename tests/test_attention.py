"""The sdpa_backends setting (models/attention.py): which attention kernels the steps may use."""

import pytest

from conftest import compose_cfg, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_leaves_cudnn_out_on_gpus_and_trains_with_the_math_kernel_on_the_cpu():
    from fewtune.models.attention import allowed

    for phase in ("train", "eval"):
        assert "cudnn" not in allowed("auto", "cuda", phase)
    assert allowed("auto", "cpu", "train") == ("math",)
    assert allowed("auto", "cpu", "eval") is None  # torch's own choice
    assert allowed("default", "cuda", "train") is None
    assert allowed(["flash", "math"], "cuda", "eval") == ("flash", "math")


def test_a_bad_setting_is_one_clear_line_before_weights_load(
    tiny_causal, data_dir, tmp_path, monkeypatch
):
    from fewtune.errors import FewtuneError
    from fewtune.models import backbones
    from fewtune.run.build import build

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were loaded before the setting was checked")

    monkeypatch.setattr(backbones, "load_model", no_weights)
    cfg = compose_cfg(
        tiny_overrides(tiny_causal, data_dir, "prompt", "sdpa_backends=[flash,fast]"), tmp_path
    )
    with pytest.raises(
        FewtuneError, match=r"sdpa_backends=.*use auto, default or a list of flash, efficient"
    ):
        build(cfg)


def kernels_run(module, batch, step) -> set[str]:
    from torch.profiler import profile

    with profile() as prof:
        step(batch, 0)
    return {e.key for e in prof.key_averages() if "scaled_dot_product" in e.key}


def test_steps_use_the_allowed_kernels_and_give_the_same_loss(tiny_causal, data_dir, tmp_path):
    from fewtune.run.build import build

    losses = {}
    for setting in ("auto", "[flash]", "default"):
        cfg = compose_cfg(
            tiny_overrides(tiny_causal, data_dir, "prompt", f"sdpa_backends={setting}"), tmp_path
        )
        datamodule, module = build(cfg)
        datamodule.setup()
        batch = datamodule.collate(datamodule.encoded["train"])
        module.eval()  # no dropout: the settings compute the same function
        used = kernels_run(module, batch, module.training_step)
        if (
            setting == "auto"
        ):  # the math kernel for CPU training steps, torch's flash kernel for evaluation
            assert used == {
                "aten::scaled_dot_product_attention",
                "aten::_scaled_dot_product_attention_math",
            }
            evaluated = kernels_run(module, batch, module.validation_step)
            assert "aten::_scaled_dot_product_flash_attention_for_cpu" in evaluated
        if setting == "[flash]":
            assert "aten::_scaled_dot_product_flash_attention_for_cpu" in used
        losses[setting] = module.training_step(batch, 0).item()
    assert losses["auto"] == pytest.approx(losses["[flash]"], rel=1e-5)
    assert losses["default"] == pytest.approx(losses["[flash]"], rel=1e-5)
