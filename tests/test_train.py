"""Each method end to end through a composed Hydra config, with tiny models of both families."""

import json

import pytest
import torch

from conftest import compose_cfg, tiny_overrides
from fewtune.run.build import build
from fewtune.train import train

FAMILIES = ["tiny_masked", "tiny_causal"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["prompt", "finetune", "zeroshot"])
def test_method_runs_end_to_end_and_writes_metrics(method, family, data_dir, tmp_path, request):
    model_dir = request.getfixturevalue(family)
    cfg = compose_cfg(tiny_overrides(model_dir, data_dir, method), tmp_path / "run")
    results = train(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == results
    assert saved["method"] == method and saved["seed"] == 13 and saved["k"] == 4
    assert 0.0 <= saved["test"]["acc"] <= 1.0 and saved["best_dev"] is not None
    assert saved["steps"] == (0 if method == "zeroshot" else 4)
    assert saved["precision"] == "32-true"  # the trainer's default, as it ran
    assert 0 < saved["trainable_params"] <= saved["total_params"]
    if method != "zeroshot":
        assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_slot_scoring_equals_the_full_lm_head(family, data_dir, tmp_path, request):
    """Scoring only the slot gives the same numbers as the full-vocabulary forward pass."""
    cfg = compose_cfg(tiny_overrides(request.getfixturevalue(family), data_dir, "prompt"), tmp_path)
    datamodule, module = build(cfg)
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()))
    module.eval()
    with torch.no_grad():
        fast = module.label_logits(batch)
        full = module.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits
    rows = torch.arange(len(fast))
    torch.testing.assert_close(fast, full[rows, batch["slot"]][:, module.label_word_ids])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["prompt", "finetune"])
def test_training_learns_the_task(method, family, data_dir, tmp_path, request):
    """A tiny random model fits the synthetic sentiment data: test accuracy rises to 1."""
    model_dir = request.getfixturevalue(family)
    overrides = tiny_overrides(model_dir, data_dir, method)
    overrides += [
        "trainer.max_steps=40",
        "trainer.val_check_interval=10",
        "optimizer.lr=3e-3",
        "seed=13",
    ]
    cfg = compose_cfg(overrides, tmp_path / "before")
    datamodule, module = build(cfg)
    datamodule.setup()
    batch = datamodule.collate(datamodule.encoded["test"])
    before = module.label_logits(batch).detach()

    results = train(compose_cfg(overrides, tmp_path / "after"))
    assert results["test"]["acc"] == 1.0
    assert results["best_dev"] == 1.0
    # and the untrained model's scores were not already those of a solved task
    assert not torch.equal(before.argmax(-1), batch["labels"])


def test_same_seed_same_result(data_dir, tiny_causal, tmp_path):
    overrides = tiny_overrides(tiny_causal, data_dir, "finetune", "trainer.deterministic=true")
    first = train(compose_cfg(overrides, tmp_path / "a"))
    second = train(compose_cfg(overrides, tmp_path / "b"))
    assert first["test"] == second["test"] and first["best_dev"] == second["best_dev"]


def test_delete_checkpoints_after_test(data_dir, tiny_masked, tmp_path):
    train(
        compose_cfg(
            tiny_overrides(tiny_masked, data_dir, "prompt", "delete_checkpoints=true"), tmp_path
        )
    )
    assert (tmp_path / "metrics.json").is_file()
    assert not list((tmp_path / "checkpoints").glob("*.ckpt"))


def test_backbone_is_reused_across_jobs_with_its_weights_reset(data_dir, tiny_causal, tmp_path):
    """Jobs of a multirun share one process: the second job gets the same model object back,
    with the pre-trained weights, so its results equal those of a fresh process."""
    from fewtune.models import backbones

    overrides = tiny_overrides(
        tiny_causal, data_dir, "prompt", "optimizer.lr=1e-2", "trainer.deterministic=true"
    )
    first = train(compose_cfg(overrides, tmp_path / "a"))
    model_after_first = build(compose_cfg(overrides, tmp_path / "x"))[1].model
    second = train(compose_cfg(overrides, tmp_path / "b"))
    reused = build(compose_cfg(overrides, tmp_path / "y"))[1].model
    assert reused is model_after_first
    from transformers import AutoModelForCausalLM

    pretrained = AutoModelForCausalLM.from_pretrained(tiny_causal).state_dict()
    for name, tensor in reused.state_dict().items():
        torch.testing.assert_close(tensor, pretrained[name], rtol=0, atol=0, msg=name)
    backbones._reusable.clear()
    fresh = train(compose_cfg(overrides, tmp_path / "c"))
    assert first["test"] == second["test"] == fresh["test"]
    assert first["best_dev"] == second["best_dev"] == fresh["best_dev"]
