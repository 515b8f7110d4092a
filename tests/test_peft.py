"""Parameter-efficient tuning (conf/peft/): every method x peft x family trains and reloads to the
same predictions through fewtune.evaluate, or is refused with its documented error."""

import json

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from conftest import compose_cfg, tiny_overrides
from fewtune.config import CONF_DIR
from fewtune.errors import FewtuneError
from fewtune.evaluate import evaluate
from fewtune.run.build import build
from fewtune.train import train

FAMILIES = ["tiny_masked", "tiny_causal"]
PEFTS = [
    "none",
    "lora",
    "ia3",
    "houlsby",
    "pfeiffer",
    "prompt_tuning",
    "prefix_tuning",
    "p_tuning",
    "bitfit",
    "head_only",
]
# (method, peft, family) -> the error it must raise: the tiny Llama, like SmolLM2, has no bias
# terms and ties its LM head to the input embeddings.
REFUSED = {
    ("prompt", "bitfit", "tiny_causal"): "has no bias terms",
    ("prompt", "head_only", "tiny_causal"): "tied to its input embeddings",
}


class RecordTestLogits(pl.Callback):
    """Keeps the label logits of each test batch (FewShotModule.test_step returns them)."""

    def __init__(self):
        self.logits = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.logits.append(outputs.detach().cpu())


# Hydra builds the training run's callbacks from the config: it finds the recorder through this.
RECORDERS: list[RecordTestLogits] = []


def make_recorder():
    RECORDERS.append(RecordTestLogits())
    return RECORDERS[-1]


pytestmark = pytest.mark.usefixtures("one_thread")


def overrides(model_dir, data_dir, method, peft, *extra):
    return tiny_overrides(
        model_dir,
        data_dir,
        method,
        f"peft={peft}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "task.max_length=64",  # leaves room for virtual tokens in the tiny BERT's 128 positions
        *extra,
    )


def run_like_hydra(cfg, run_dir):
    """train(cfg) as the Hydra entry point runs it: the run folder gets .hydra/config.yaml."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return train(cfg)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("peft", PEFTS)
@pytest.mark.parametrize("method", ["prompt", "finetune"])
def test_every_combination_trains_and_reloads_or_is_refused(
    method, peft, family, data_dir, tmp_path, request
):
    model_dir = request.getfixturevalue(family)
    record = "+callbacks.record._target_=test_peft.make_recorder"
    cfg = compose_cfg(overrides(model_dir, data_dir, method, peft, record), tmp_path)
    refused = REFUSED.get((method, peft, family))
    if refused:
        with pytest.raises(FewtuneError, match=refused):
            run_like_hydra(cfg, tmp_path)
        return

    results = run_like_hydra(cfg, tmp_path)
    trained_logits = torch.cat(RECORDERS[-1].logits)
    assert json.loads((tmp_path / "metrics.json").read_text()) == results
    assert results["peft"] == peft and results["steps"] == 2
    assert 0 < results["trainable_params"] <= results["total_params"]
    assert results["trainable_share"] == round(
        results["trainable_params"] / results["total_params"], 6
    )
    assert (
        results["step_time_s"] > 0
        and results["peak_rss_mb"] > 0
        and results["task_storage_bytes"] > 0
    )
    backbone_bytes = (model_dir / "model.safetensors").stat().st_size
    if peft == "none":
        assert results["trainable_share"] == 1.0
        assert (tmp_path / "checkpoints" / "best.ckpt").stat().st_size == results[
            "task_storage_bytes"
        ]
    else:
        # Only the trained weights are kept, as safetensors; no Lightning checkpoint.
        stored = tmp_path / "task_weights.safetensors"
        assert stored.stat().st_size == results["task_storage_bytes"]
        assert not (tmp_path / "checkpoints").exists()
        assert results["trainable_share"] < 0.5
    if peft in ("lora", "houlsby", "pfeiffer"):
        assert results["task_storage_bytes"] < 0.02 * backbone_bytes

    recorder = RecordTestLogits()
    assert evaluate(tmp_path, callbacks=[recorder]) == results["test"]
    torch.testing.assert_close(torch.cat(recorder.logits), trained_logits, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("peft", [p for p in PEFTS if p != "none"])
@pytest.mark.parametrize("method", ["prompt", "finetune"])
def test_what_trains_gets_gradients_and_nothing_else_trains(
    method, peft, family, data_dir, tmp_path, request
):
    """A method that silently did nothing (a prefix the body ignores, a frozen classifier head)
    would leave its weights without gradients."""
    if (method, peft, family) in REFUSED:
        pytest.skip("refused: see test_every_combination_trains_and_reloads_or_is_refused")
    cfg = compose_cfg(overrides(request.getfixturevalue(family), data_dir, method, peft), tmp_path)
    datamodule, module = build(cfg)
    datamodule.setup()
    batch = next(iter(datamodule.train_dataloader()))
    module.train()
    module.loss(module.label_logits(batch), batch["labels"]).backward()
    trained = {name: p for name, p in module.named_parameters() if p.requires_grad}
    assert trained and [name for name, p in trained.items() if p.grad is None] == []
    assert sum(p.grad.abs().sum() for p in trained.values()) > 0
    assert all(p.grad is None for p in module.parameters() if not p.requires_grad)
    if method == "finetune":  # the new classifier head trains with every method
        head = "classifier" if family == "tiny_masked" else "score"
        assert any(name.startswith(f"model.{head}.") for name in trained)


@pytest.mark.parametrize(
    "peft,fix",
    [("bitfit", "peft.include_norms=true"), ("head_only", "peft.trainable=[model.norm.weight]")],
)
def test_the_fix_a_refusal_suggests_works(peft, fix, data_dir, tiny_causal, tmp_path):
    cfg = compose_cfg(overrides(tiny_causal, data_dir, "prompt", peft, fix), tmp_path)
    names = [name for name, p in build(cfg)[1].named_parameters() if p.requires_grad]
    assert names and all(name.endswith("norm.weight") for name in names)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("peft", ["lora", "ia3"])
def test_merge_keeps_the_predictions(peft, family, data_dir, tmp_path, request):
    """peft.merge=true folds the update into the weights: the layers are plain again, the logits the same."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from fewtune.peft import merge_if_asked
    from fewtune.run.reload import load_run_weights

    extra = ("peft.lr=1e-2", "peft.merge=true")  # a large step: the update is far from the identity
    cfg = compose_cfg(
        overrides(request.getfixturevalue(family), data_dir, "prompt", peft, *extra), tmp_path
    )
    results = run_like_hydra(cfg, tmp_path)
    assert evaluate(tmp_path) == results["test"]  # merged again after loading

    datamodule, module = build(cfg)
    cfg.peft.merge = False
    load_run_weights(module, cfg, tmp_path)
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()))
    module.eval()
    with torch.no_grad():
        before = module.label_logits(batch)
        update = [p for name, p in module.named_parameters() if "lora_B" in name or "ia3_l" in name]
        identity = 1.0 if peft == "ia3" else 0.0  # (IA)3 scales start at 1, LoRA's B at 0
        assert max((p - identity).abs().max() for p in update) > 1e-3
        merge_if_asked(module.model, {"name": peft, "merge": True})
        after = module.label_logits(batch)
    assert not any(isinstance(m, BaseTunerLayer) for m in module.modules())
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_evaluate_command_says_what_is_wrong_in_one_line(tmp_path, capsys):
    from fewtune.evaluate import main

    with pytest.raises(
        SystemExit, match=r"^error: .*\.hydra/config\.yaml is missing: give the folder of a run"
    ):
        main([str(tmp_path)])


def test_peft_never_touches_the_reused_backbone(data_dir, tiny_causal, tmp_path):
    """The multirun cache keeps one pristine LM backbone: a LoRA job gets a copy of its own."""
    from transformers import AutoModelForCausalLM

    from fewtune.models import backbones

    plain = build(compose_cfg(overrides(tiny_causal, data_dir, "prompt", "none"), tmp_path / "a"))[
        1
    ].model
    train(
        compose_cfg(
            overrides(tiny_causal, data_dir, "prompt", "lora", "peft.lr=1e-2"), tmp_path / "b"
        )
    )
    lora = build(compose_cfg(overrides(tiny_causal, data_dir, "prompt", "lora"), tmp_path / "c"))[
        1
    ].model
    again = build(compose_cfg(overrides(tiny_causal, data_dir, "prompt", "none"), tmp_path / "d"))[
        1
    ].model
    assert lora is not plain and again is plain
    assert not any("lora" in name for name, _ in again.named_parameters())
    pretrained = AutoModelForCausalLM.from_pretrained(tiny_causal).state_dict()
    assert again.state_dict().keys() == pretrained.keys()
    for name, tensor in again.state_dict().items():
        torch.testing.assert_close(tensor, pretrained[name], rtol=0, atol=0, msg=name)
    assert all(p.requires_grad for p in again.parameters())
    backbones._reusable.clear()


@pytest.mark.parametrize("peft", ["prompt_tuning", "p_tuning"])
def test_virtual_tokens_leave_the_real_positions_in_place(peft, data_dir, tiny_causal, tmp_path):
    """The classifier of a decoder pools the last non-pad token: extra right padding changes nothing,
    and the body's output has the input's length, so the prompt head's slot is unchanged."""
    cfg = compose_cfg(overrides(tiny_causal, data_dir, "finetune", peft), tmp_path)
    datamodule, module = build(cfg)
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()))
    padded = dict(batch)
    padded["input_ids"] = torch.nn.functional.pad(
        batch["input_ids"], (0, 5), value=module.model.config.pad_token_id
    )
    padded["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, 5), value=0)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(module.label_logits(padded), module.label_logits(batch))
        hidden = module.model.base_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )[0]
    assert hidden.shape[1] == batch["input_ids"].shape[1]


@pytest.mark.parametrize("init", ["template", "random"])
def test_prompt_tuning_starts_from_the_template_words_or_at_random(
    init, data_dir, tiny_masked, tmp_path
):
    extra = ("peft.num_virtual_tokens=5", f"peft.init={init}")
    cfg = compose_cfg(overrides(tiny_masked, data_dir, "prompt", "prompt_tuning", *extra), tmp_path)
    datamodule, module = build(cfg)
    words = datamodule.encoder.tokenizer.encode(
        "It was .", add_special_tokens=False
    )  # sst2's template words
    body = module.model.base_model.peft_body
    prompt = body.prompt_encoder["default"].embedding.weight
    from_words = body.get_base_model().get_input_embeddings().weight[(words * 5)[:5]]
    assert prompt.shape == from_words.shape and torch.equal(prompt, from_words) == (
        init == "template"
    )


def test_costs_reach_the_loggers(data_dir, tiny_masked, tmp_path):
    import csv

    cfg = compose_cfg(overrides(tiny_masked, data_dir, "finetune", "lora", "logger=csv"), tmp_path)
    results = train(cfg)
    rows = list(csv.DictReader(next(tmp_path.glob("csv/**/metrics.csv")).open()))
    logged = {k: v for row in rows for k, v in row.items() if k.startswith("cost/") and v}
    assert int(float(logged["cost/trainable_params"])) == results["trainable_params"]
    assert {
        "cost/trainable_share",
        "cost/task_storage_bytes",
        "cost/step_time_s",
        "cost/peak_rss_mb",
    } <= set(logged)


@pytest.mark.parametrize(
    "method,peft,extra,message",
    [
        (
            "prompt",
            "lora",
            ["peft.target_modules=[query,nope]"],
            r"'nope' is not a layer .*: .*query.*value",
        ),
        (
            "finetune",
            "lora",
            ["peft.r=0"],
            r"peft.r=0: the rank of the update must be a whole number >= 1",
        ),
        (
            "finetune",
            "ia3",
            ["peft.target_modules=[query]", "peft.feedforward_modules=[value]"],
            "must also be in",
        ),
        (
            "zeroshot",
            "lora",
            [],
            "method=zeroshot trains nothing, so peft=lora has nothing to tune",
        ),
        ("prompt", "prompt_tuning", ["peft.merge=true"], "Could not override 'peft.merge'"),
        ("prompt", "prompt_tuning", ["+peft.merge=true"], "peft.merge=true needs peft=lora or ia3"),
        ("prompt", "prompt_tuning", ["peft.num_virtual_tokens=0"], "num_virtual_tokens=0"),
        ("prompt", "prefix_tuning", ["task.max_length=120"], "exceed the 128 positions"),
        (
            "prompt",
            "head_only",
            ["peft.trainable=[nothing.*]"],
            r"'nothing\.\*' matches no parameter",
        ),
        ("prompt", "prompt_tuning", ["peft.init=vocab"], "peft.init='vocab' is unknown"),
        (
            "prompt",
            "houlsby",
            ["peft.reduction_factor=0"],
            "peft.reduction_factor=0: the hidden size.s divisor giving",
        ),
        (
            "finetune",
            "pfeiffer",
            ["peft.bottleneck_size=-4"],
            "peft.bottleneck_size=-4: the adapter's width",
        ),
        ("prompt", "houlsby", ["peft.non_linearity=nope"], "peft.non_linearity='nope' is unknown"),
        (
            "prompt",
            "houlsby",
            ["peft.attention_output=self.nope"],
            r"no module named 'self.nope' .*attention\.self\.query",
        ),
        ("finetune", "pfeiffer", ["peft.feedforward_output=output"], r"output is a BertOutput"),
        (
            "prompt",
            "houlsby",
            ["peft.feedforward_output=attention.output.dense"],
            "was chosen twice",
        ),
        ("prompt", "pfeiffer", ["+peft.merge=true"], "peft.merge=true needs peft=lora or ia3"),
    ],
)
def test_bad_settings_give_one_clear_line(
    method, peft, extra, message, data_dir, tiny_masked, tmp_path
):
    from hydra.errors import ConfigCompositionException

    with pytest.raises((FewtuneError, ConfigCompositionException), match=message) as err:
        train(compose_cfg(overrides(tiny_masked, data_dir, method, peft, *extra), tmp_path))
    if err.type is FewtuneError:
        assert "\n" not in str(err.value)


def test_unknown_peft_name_is_hydras_error(data_dir, tiny_masked, tmp_path):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="peft"):
        compose_cfg(overrides(tiny_masked, data_dir, "prompt", "loraa"), tmp_path)


@pytest.mark.parametrize("arch", ["albert", "distilbert", "deberta-v2"])
def test_prefix_tuning_is_refused_where_the_body_takes_no_cache(arch):
    """These encoders take no key/value cache, which is how peft feeds the prefix in."""
    import transformers as T

    from fewtune import peft

    small = dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    model = {
        "albert": lambda: T.AlbertForMaskedLM(T.AlbertConfig(**small, embedding_size=8)),
        "distilbert": lambda: T.DistilBertForMaskedLM(
            T.DistilBertConfig(vocab_size=64, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
        ),
        "deberta-v2": lambda: T.DebertaV2ForMaskedLM(T.DebertaV2Config(**small)),
    }[arch]()
    cfg = OmegaConf.load(CONF_DIR / "peft" / "prefix_tuning.yaml")
    with pytest.raises(
        FewtuneError, match="prefix_tuning feeds its prefix through the key/value cache"
    ):
        peft.apply(cfg, model, "lm", tokenizer=None, template="", max_length=32)
    # prompt tuning works there: the virtual tokens take the (narrower, for ALBERT) embedding width
    model = type(model)(model.config)
    random_prompt = OmegaConf.merge(
        OmegaConf.load(CONF_DIR / "peft" / "prompt_tuning.yaml"), {"init": "random"}
    )
    peft.apply(random_prompt, model, "lm", tokenizer=None, template="", max_length=32)
    ids = torch.randint(5, 60, (2, 7))
    out = model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids))[0]
    assert out.shape[:2] == (2, 7)


@pytest.mark.parametrize(
    ("peft", "lr"), [("none", 1e-5), ("lora", 5e-4), ("ia3", 3e-3), ("lora peft.lr=null", 1e-5)]
)
def test_a_peft_method_trains_at_its_own_learning_rate(peft, lr, tiny_masked, data_dir, tmp_path):
    from conftest import compose_cfg, tiny_overrides
    from fewtune.run.build import build

    name, *extra = peft.split()
    cfg = compose_cfg(
        tiny_overrides(
            tiny_masked, data_dir, "prompt", f"peft={name}", "optimizer.lr=1e-5", *extra
        ),
        tmp_path,
    )
    _, module = build(cfg)
    assert module.optimizer_factory.keywords["lr"] == lr
