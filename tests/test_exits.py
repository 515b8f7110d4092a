"""Early exit (conf/exit/): internal heads trained jointly, patience and confidence rules at
inference on a shrinking batch, storage with peft, the measurement command, and refusals."""

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_cfg, tiny_overrides
from fewtune.errors import FewtuneError
from fewtune.evaluate import evaluate
from fewtune.run.build import build
from fewtune.run.reload import load_run_weights
from fewtune.train import train

FAMILIES = ["tiny_masked", "tiny_causal"]
HEADS = ["prompt", "finetune"]


pytestmark = pytest.mark.usefixtures("one_thread")


def exit_module(model_dir, data_dir, tmp_path, method, *extra):
    """(module in eval mode, a test batch) for a tiny model with an exit after every layer."""
    cfg = compose_cfg(tiny_overrides(model_dir, data_dir, method, "exit=all", *extra), tmp_path)
    datamodule, module = build(cfg)
    datamodule.setup()
    module.eval()
    return module, datamodule.collate(datamodule.encoded["test"])


def count_rows(module) -> tuple[list[int], list]:
    """Rows each layer computes, counted by forward hooks on the body's layers."""
    seen = [0] * module.runner.num_layers
    hooks = [
        layer.register_forward_hook(
            lambda m, args, out, i=i: seen.__setitem__(i, seen[i] + args[0].size(0))
        )
        for i, layer in enumerate(module.runner.layers)
    ]
    return seen, hooks


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", HEADS)
def test_patience_beyond_the_depth_predicts_as_the_full_model(
    method, family, data_dir, tmp_path, request
):
    module, batch = exit_module(
        request.getfixturevalue(family),
        data_dir,
        tmp_path,
        method,
        "exit.rule=patience",
        "exit.patience=5",
    )
    with torch.no_grad():
        full = module.full_logits(batch)
        logits, exited_at = module.early_exit(batch)
        per_exit = module.all_exit_logits(batch)
    assert module.exit_layers == [1, 2]
    assert exited_at.tolist() == [2] * len(batch["labels"])
    assert torch.equal(logits.argmax(-1), full.argmax(-1))
    torch.testing.assert_close(logits, full, rtol=1e-4, atol=1e-5)
    # the layer-by-layer path's last exit is the model's own head
    torch.testing.assert_close(per_exit[2], full, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(per_exit[1], full)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", HEADS)
def test_an_entropy_threshold_everyone_meets_exits_at_the_first_exit(
    method, family, data_dir, tmp_path, request
):
    threshold = math.log(2) + 1  # above the largest entropy of 2 labels
    module, batch = exit_module(
        request.getfixturevalue(family),
        data_dir,
        tmp_path,
        method,
        "exit.rule=confidence",
        f"exit.entropy={threshold}",
    )
    seen, hooks = count_rows(module)
    with torch.no_grad():
        logits, exited_at = module.early_exit(batch)
    for hook in hooks:
        hook.remove()
    assert exited_at.tolist() == [1] * len(batch["labels"])
    assert seen == [len(batch["labels"]), 0]  # the second layer never ran
    with torch.no_grad():
        torch.testing.assert_close(logits, module.all_exit_logits(batch)[1])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", HEADS)
def test_layers_after_an_examples_exit_never_see_it(method, family, data_dir, tmp_path, request):
    """A threshold between the examples' entropies: some exit after layer 1, the rest go on alone
    and get the same logits as in the full batch (the mask is rebuilt for the rows left)."""
    module, batch = exit_module(
        request.getfixturevalue(family), data_dir, tmp_path, method, "exit.rule=confidence"
    )
    with torch.no_grad():
        first = module.all_exit_logits(batch)[1].float().softmax(-1)
        full = module.full_logits(batch)
    entropy = torch.special.entr(first).sum(-1)
    threshold = entropy.median().item()
    assert (entropy < threshold).any() and (entropy >= threshold).any()
    module.exit_settings = module.exit_settings.with_rule("confidence", threshold)
    seen, hooks = count_rows(module)
    with torch.no_grad():
        logits, exited_at = module.early_exit(batch)
    for hook in hooks:
        hook.remove()
    went_on = exited_at == 2
    assert torch.equal(went_on, entropy >= threshold)
    assert seen == [len(batch["labels"]), int(went_on.sum())]
    torch.testing.assert_close(logits[went_on], full[went_on], rtol=1e-4, atol=1e-5)


# The new heads on BERT's pooler, and the LM head behind Llama's final norm.
@pytest.mark.parametrize("method, family", [("finetune", "tiny_masked"), ("prompt", "tiny_causal")])
def test_training_with_exits_lowers_the_internal_exits_loss(
    method, family, data_dir, tmp_path, request
):
    overrides = tiny_overrides(
        request.getfixturevalue(family),
        data_dir,
        method,
        "exit=all",
        "trainer.max_steps=30",
        "trainer.val_check_interval=30",
        "optimizer.lr=3e-3",
    )
    cfg = compose_cfg(overrides, tmp_path)
    datamodule, module = build(cfg)
    datamodule.setup()
    batch = datamodule.collate(datamodule.encoded["train"])

    def internal_loss(module) -> float:
        module.eval()
        with torch.no_grad():
            return module.loss(module.all_exit_logits(batch)[1], batch["labels"]).item()

    before = internal_loss(module)
    train(cfg)
    trained = build(cfg)[1]
    load_run_weights(trained, cfg, tmp_path)
    assert internal_loss(trained) < 0.7 * before  # from ln 2 = 0.69 at random


def test_exits_with_lora_are_stored_with_the_task_weights_and_reloaded(
    data_dir, tiny_masked, tmp_path
):
    from safetensors.torch import load_file

    from fewtune.exits.measure import main as exits_main

    overrides = tiny_overrides(
        tiny_masked,
        data_dir,
        "finetune",
        "peft=lora",
        "exit=all",
        "exit.rule=patience",
        "exit.patience=1",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
    )
    cfg = compose_cfg(overrides, tmp_path)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    results = train(cfg)
    stored = load_file(str(tmp_path / "task_weights.safetensors"))
    assert {"exit_heads.1.weight", "exit_heads.1.bias"} <= set(stored)
    assert 1.0 <= results["test"]["exit_layers"] <= 2.0
    assert evaluate(tmp_path) == results["test"]  # exit heads, LoRA and the classifier come back

    # the measurement command on this run: thresholds at both ends of the range
    exits_main([str(tmp_path), "--patience", "1", "9", "--entropy", "0", "10"])
    saved = json.loads((tmp_path / "exits.json").read_text())
    rows = {(r["rule"], r["value"]): r for r in saved["settings"]}
    assert rows[("patience", 9)]["exit_layers"] == 2 == rows[("confidence", 0.0)]["exit_layers"]
    assert rows[("confidence", 10.0)]["exit_layers"] == 1
    assert rows[("patience", 9)]["acc"] == saved["full"]["acc"]
    assert rows[("patience", 1)]["acc"] == results["test"]["acc"]
    assert all(r["speedup"] > 0 and r["time_s"] > 0 for r in saved["settings"])
    assert set(saved["per_layer"]) == {"1", "2"}
    assert (tmp_path / "exits.png").stat().st_size > 0

    # timing 1 of 4 batches: the same metrics and exit layers, replayed from the exits' logits
    thresholds = [
        "--patience",
        "1",
        "9",
        "--entropy",
        "0",
        "0.6",
        "10",
        "--set",
        "eval_batch_size=4",
    ]
    exits_main([str(tmp_path), *thresholds])
    every = json.loads((tmp_path / "exits.json").read_text())
    exits_main([str(tmp_path), *thresholds, "--time-batches", "1"])
    sampled = json.loads((tmp_path / "exits.json").read_text())
    assert (every["batches"], every["timed_batches"], sampled["timed_batches"]) == (4, 4, 1)
    for full, part in zip(every["settings"], sampled["settings"]):
        assert (part["acc"], part["exit_layers"]) == (full["acc"], full["exit_layers"])
        assert part["replay_agreement"] == 1.0 and full["replay_agreement"] is None


def test_every_nth_layer_and_loss_weights_by_layer(data_dir, tiny_causal, tmp_path):
    from fewtune.exits.rules import settings

    chosen = settings({"name": "every2", "every": 2})
    assert chosen.exit_layers(6) == [2, 4, 6] and chosen.weights([2, 4, 6]) == [2.0, 4.0, 6.0]
    assert settings({"name": "all", "layers": [1, 3]}).exit_layers(4) == [1, 3, 4]
    cfg = compose_cfg(tiny_overrides(tiny_causal, data_dir, "prompt", "exit=every2"), tmp_path)
    assert cfg.exit.every == 2 and cfg.exit.rule == "none"
    with pytest.raises(FewtuneError, match="leaves no exit before the last"):
        build(cfg)  # the tiny model has 2 layers


@pytest.mark.parametrize(
    "extra, message",
    [
        (["exit.layers=[5]"], "layer 5 is beyond the model's 2 layers"),
        (["exit.rule=fastest"], "exit.rule='fastest' is unknown"),
        (["exit.patience=0"], "exit.patience=0 must be a whole number"),
        (["exit.entropy=-1"], "exit.entropy=-1 must be a number >= 0"),
        (["exit.loss_weights=square"], "exit.loss_weights='square' is unknown"),
        (["peft=prompt_tuning"], "virtual tokens go in front of the body"),
    ],
)
def test_bad_settings_give_one_clear_line(extra, message, data_dir, tiny_masked, tmp_path):
    cfg = compose_cfg(
        tiny_overrides(tiny_masked, data_dir, "finetune", "exit=all", *extra), tmp_path
    )
    with pytest.raises(FewtuneError, match=message) as err:
        build(cfg)
    assert "\n" not in str(err.value)


def test_other_architectures_are_refused(bpe_tokenizer):
    from transformers import GPT2Config, GPT2Model

    from fewtune.exits.layerwise import LayerRunner

    body = GPT2Model(GPT2Config(vocab_size=100, n_embd=16, n_layer=2, n_head=2, n_positions=32))
    with pytest.raises(
        FewtuneError, match="supports BERT- and Llama-family backbones.*'gpt2'"
    ) as err:
        LayerRunner(body)
    assert "\n" not in str(err.value)


def test_measuring_a_run_without_exits_says_so(data_dir, tiny_masked, tmp_path, capsys):
    from fewtune.exits.measure import main as exits_main

    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "finetune"), tmp_path)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    with pytest.raises(SystemExit, match="trained with exit=none") as err:
        exits_main([str(tmp_path)])
    assert "\n" not in str(err.value)
    with pytest.raises(SystemExit, match="holds no run"):
        exits_main([str(tmp_path / "nowhere")])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", HEADS)
@pytest.mark.parametrize(
    "rule,value", [("patience", 1), ("patience", 2), ("confidence", 0.6), ("confidence", 0.69)]
)
def test_replaying_the_exits_logits_decides_as_early_exit_does(
    method, family, rule, value, data_dir, tmp_path, request
):
    from fewtune.exits.rules import replay

    module, batch = exit_module(request.getfixturevalue(family), data_dir, tmp_path, method)
    module.exit_settings = module.exit_settings.with_rule(rule, value)
    with torch.no_grad():
        logits, exited_at = module.early_exit(batch)
        replayed, replayed_at = replay(module.exit_settings, module.all_exit_logits(batch))
    assert torch.equal(replayed_at, exited_at)
    torch.testing.assert_close(replayed, logits)
