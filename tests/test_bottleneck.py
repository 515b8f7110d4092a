"""Bottleneck adapters (peft=houlsby, peft=pfeiffer; fewtune/peft/bottleneck.py): where they go
in each family, that they start as the identity, what they store, and that training moves them.
test_peft.py runs them through every method x family with the other peft methods."""

import pytest
import torch
import transformers as T
from omegaconf import OmegaConf

from conftest import compose_cfg, tiny_overrides
from fewtune.config import CONF_DIR
from fewtune.errors import FewtuneError
from fewtune.run.build import build

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(
    vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)
# Families beyond the tests' tiny BERT and Llama: the models and where the adapters must land.
ARCHITECTURES = {
    "roberta": (
        lambda: T.RobertaForSequenceClassification(T.RobertaConfig(**SMALL, pad_token_id=1)),
        "roberta.encoder.layer.{}.attention.output.dense",
        "roberta.encoder.layer.{}.output.dense",
    ),
    "gpt2": (
        lambda: T.GPT2LMHeadModel(T.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2)),
        "transformer.h.{}.attn.c_proj",
        "transformer.h.{}.mlp.c_proj",
    ),
    "llama": (
        lambda: T.LlamaForSequenceClassification(
            T.LlamaConfig(**SMALL, num_key_value_heads=1, pad_token_id=0)
        ),
        "model.layers.{}.self_attn.o_proj",
        "model.layers.{}.mlp.down_proj",
    ),
    "bert": (
        lambda: T.BertForMaskedLM(T.BertConfig(**SMALL)),
        "bert.encoder.layer.{}.attention.output.dense",
        "bert.encoder.layer.{}.output.dense",
    ),
}


def peft_cfg(name, **changes):
    return OmegaConf.merge(OmegaConf.load(CONF_DIR / "peft" / f"{name}.yaml"), changes)


def adapted(module: torch.nn.Module) -> list[str]:
    return [
        name.removesuffix(".bottleneck")
        for name, _ in module.named_modules()
        if name.endswith(".bottleneck")
    ]


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_adapters_follow_the_chosen_sublayers_start_as_the_identity_and_alone_train(name, arch):
    from fewtune import peft

    make, attention, feedforward = ARCHITECTURES[arch]
    torch.manual_seed(0)
    model = make().eval()
    ids = torch.randint(3, 60, (2, 9))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    head = "classifier" if "SequenceClassification" in type(model).__name__ else "lm"
    peft.apply(peft_cfg(name), model, head, tokenizer=None, template="", max_length=32)

    where = [feedforward] if name == "pfeiffer" else [attention, feedforward]
    assert sorted(adapted(model)) == sorted(path.format(i) for path in where for i in range(2))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before, rtol=0, atol=1e-6)

    model.train()
    model(input_ids=ids).logits.float().pow(2).mean().backward()
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    new = {n for n in trained if ".bottleneck." in n}
    assert new and all(model.get_parameter(n).grad is not None for n in new)
    assert sum(model.get_parameter(n).grad.abs().sum() for n in new) > 0
    # a new classifier head trains too, as with every peft method; the backbone does not
    assert trained - new == (
        {n for n in trained if n.startswith(("classifier.", "score."))}
        if head == "classifier"
        else set()
    )


def test_bottleneck_size_and_non_linearity_are_settings():
    from fewtune.peft import bottleneck

    model = ARCHITECTURES["llama"][0]()
    model.requires_grad_(False)
    bottleneck.insert(model, peft_cfg("houlsby", bottleneck_size=5, non_linearity="tanh"))
    adapter = model.get_submodule("model.layers.0.mlp.down_proj.bottleneck")
    assert adapter.down.weight.shape == (5, 32) and adapter.up.weight.shape == (32, 5)
    assert isinstance(adapter.act, torch.nn.Tanh)
    model = ARCHITECTURES["llama"][0]()
    bottleneck.insert(model, peft_cfg("pfeiffer", reduction_factor=8))  # hidden 32 / 8
    assert model.get_submodule("model.layers.1.mlp.down_proj.bottleneck").down.out_features == 4


def test_unknown_families_are_refused_with_their_layers_and_take_a_path():
    from fewtune import peft

    def albert():
        return T.AlbertForMaskedLM(T.AlbertConfig(**SMALL, embedding_size=16))

    with pytest.raises(
        FewtuneError, match=r"no default sublayers for model type 'albert'.*attention\.dense"
    ):
        peft.apply(peft_cfg("pfeiffer"), albert(), "lm", tokenizer=None, template="", max_length=32)
    model = albert()
    peft.apply(
        peft_cfg("pfeiffer", feedforward_output="ffn_output"),
        model,
        "lm",
        tokenizer=None,
        template="",
        max_length=32,
    )
    assert adapted(model) == ["albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output"]


@pytest.mark.parametrize("family", ["tiny_masked", "tiny_causal"])
@pytest.mark.parametrize("method", ["prompt", "finetune"])
@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_before_training_the_run_predicts_as_the_backbone(
    name, method, family, data_dir, tmp_path, request
):
    """The run's label logits with fresh adapters are the backbone's (the same classifier head)."""
    model_dir = request.getfixturevalue(family)

    def logits(peft):
        cfg = compose_cfg(
            tiny_overrides(model_dir, data_dir, method, f"peft={peft}"), tmp_path / peft
        )
        torch.manual_seed(0)  # the same new classifier head for both
        datamodule, module = build(cfg)
        datamodule.setup()
        module.eval()
        with torch.no_grad():
            return module, module.label_logits(next(iter(datamodule.test_dataloader())))

    module, with_adapters = logits(name)
    assert adapted(module)
    torch.testing.assert_close(with_adapters, logits("none")[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("family", ["tiny_masked", "tiny_causal"])
@pytest.mark.parametrize("name", ["houlsby", "pfeiffer"])
def test_training_moves_the_adapters_and_the_predictions(name, family, data_dir, tmp_path, request):
    from fewtune.peft.storage import TASK_WEIGHTS_FILE
    from fewtune.run.reload import load_run_weights
    from fewtune.train import train

    model_dir = request.getfixturevalue(family)
    # 8 units: with the default 32 // 16 = 2, both of a ReLU's units can be dead in a layer
    extra = (
        "peft.lr=1e-2",
        "peft.bottleneck_size=8",
        "trainer.max_steps=4",
        "trainer.val_check_interval=1",
    )
    cfg = compose_cfg(
        tiny_overrides(model_dir, data_dir, "prompt", f"peft={name}", *extra), tmp_path
    )
    results = train(cfg)

    datamodule, trained = build(cfg)
    load_run_weights(trained, cfg, tmp_path)
    _, base = build(
        compose_cfg(tiny_overrides(model_dir, data_dir, "prompt", "peft=none"), tmp_path / "base")
    )
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()))
    trained.eval(), base.eval()
    with torch.no_grad():
        moved = (trained.label_logits(batch) - base.label_logits(batch)).abs().max()
    assert moved > 1e-3
    ups = [p for n, p in trained.named_parameters() if n.endswith("bottleneck.up.weight")]
    assert ups and all(p.abs().max() > 0 for p in ups)

    # what is stored: the adapters alone, a small share of the model
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / TASK_WEIGHTS_FILE))
    assert stored and all(".bottleneck." in key for key in stored)
    per_adapter = 2 * 32 * 8 + 8 + 32  # hidden 32, width 8: down and up, with biases
    count = (4 if name == "houlsby" else 2) * per_adapter
    assert sum(t.numel() for t in stored.values()) == results["trainable_params"] == count
    assert results["trainable_share"] < 0.005  # of a tiny model whose embeddings are most of it


def test_a_copied_model_runs_its_own_adapters():
    """The hook finds the adapter on its module: a deep copy must not run the original's."""
    import copy

    from fewtune.peft import bottleneck

    model = ARCHITECTURES["gpt2"][0]().eval()
    bottleneck.insert(model, peft_cfg("pfeiffer"))
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in twin.named_parameters():
            if ".bottleneck.up." in name:
                p.fill_(0.1)
    ids = torch.randint(3, 60, (1, 5))
    with torch.no_grad():
        assert not torch.allclose(twin(input_ids=ids).logits, model(input_ids=ids).logits)


def test_the_params_figure_draws_the_adapters_like_the_other_methods(
    data_dir, tiny_causal, tmp_path
):
    """Real (tiny) run folders: the table reads each adapter's title and trainable parameters."""
    from omegaconf import OmegaConf

    from fewtune.report.params import params_accuracy_figure, params_points
    from fewtune.report.runs import collect_runs
    from fewtune.train import train

    counts = {}
    for name in ("houlsby", "pfeiffer", "lora"):
        run_dir = tmp_path / "multirun" / name
        overrides = tiny_overrides(
            tiny_causal, data_dir, "prompt", f"peft={name}", "trainer.max_steps=2"
        )
        cfg = compose_cfg(overrides, run_dir)
        (run_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
        counts[name] = train(cfg)["trainable_params"]

    runs = collect_runs([tmp_path / "multirun"])
    points = {title: params for (title, _, _), (params, _) in params_points(runs)["sst2"].items()}
    titles = {"houlsby": "Houlsby adapter", "pfeiffer": "Pfeiffer adapter", "lora": "LoRA"}
    assert points == {f"Prompt-based FT + {titles[name]}": count for name, count in counts.items()}
    assert counts["houlsby"] == 2 * counts["pfeiffer"]
    labels = {
        text.get_text().split(" · ")[0]
        for text in params_accuracy_figure(runs).legends[0].get_texts()
    }
    assert labels == set(points)


@pytest.mark.parametrize("family", ["tiny_masked", "tiny_causal"])
def test_early_exit_runs_the_adapters_layer_by_layer(family, data_dir, tmp_path, request):
    """Early exit calls the layers' pieces itself: the adapters must run there too."""
    extra = ("peft=houlsby", "exit=all", "exit.rule=patience", "exit.patience=5")
    cfg = compose_cfg(
        tiny_overrides(request.getfixturevalue(family), data_dir, "finetune", *extra), tmp_path
    )
    datamodule, module = build(cfg)
    datamodule.setup()
    module.eval()
    batch = datamodule.collate(datamodule.encoded["test"])
    ups = [p for n, p in module.named_parameters() if n.endswith("bottleneck.up.weight")]
    with torch.no_grad():
        identity = module.full_logits(batch)
        for p in ups:
            p.normal_(std=0.5)
        full = module.full_logits(batch)
        layer_by_layer = module.all_exit_logits(batch)[2]
    assert not torch.allclose(full, identity)
    torch.testing.assert_close(layer_by_layer, full, rtol=1e-4, atol=1e-5)
