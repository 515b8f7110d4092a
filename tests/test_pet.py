"""method=pet (PET and iPET): the ensemble, the soft labels, distillation, the unlabeled pool, the
errors and the table's rows, with tiny models."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import NEGATIVE, POSITIVE, compose_cfg, load_task, tiny_overrides
from fewtune.errors import FewtuneError
from fewtune.pet.ensemble import ensemble_probs, pattern_weights, soft_labels
from fewtune.pet.ipet import added_size, most_confident
from fewtune.pet.unlabeled import unlabeled_examples
from fewtune.report.runs import collect_runs
from fewtune.report.summary import summarize
from fewtune.table import make_table
from fewtune.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

# Two patterns keep the runs short; the task's own four are used where nothing is overridden.
TWO_PATTERNS = 'task.pet_templates.masked=["{sentence} It was {mask} .","Just {mask} ! {sentence}"]'
NEW_SENTENCES = [f"new film number {i} was {'great' if i % 2 else 'terrible'}" for i in range(24)]


def write_original_pool(data_dir: Path) -> Path:
    """<data>/original/SST-2: the K-shot sentences (which PET must leave out) and 24 others."""
    folder = data_dir / "original" / "SST-2"
    folder.mkdir(parents=True)
    rows = [f"{s}\t0" for s in NEGATIVE] + [f"{s}\t1" for s in POSITIVE]
    rows += [f"{s}\t{i % 2}" for i, s in enumerate(NEW_SENTENCES)]
    (folder / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\na fine film\t1\n")
    return data_dir


def save_hydra_config(cfg, run_dir: Path) -> None:
    """What Hydra writes beside a run, so that the table finds it."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")


# --- the ensemble and the soft labels, by hand --------------------------------------------------


def test_ensemble_probabilities_are_the_mean_or_the_weighted_mean_of_the_patterns():
    # pattern A says (0.2, 0.8), pattern B (0.6, 0.4); logits are log-probabilities up to a constant
    logits = torch.tensor([[[0.2, 0.8]], [[0.6, 0.4]]]).log() + torch.tensor([[[1.0]], [[-3.0]]])
    mean = ensemble_probs(logits, pattern_weights("mean", [0.75, 0.25]))
    torch.testing.assert_close(mean, torch.tensor([[0.4, 0.6]]))
    weights = pattern_weights("weighted", [0.75, 0.25])  # the dev accuracies before training
    torch.testing.assert_close(weights, torch.tensor([0.75, 0.25]))
    # (0.75 * 0.2 + 0.25 * 0.6, 0.75 * 0.8 + 0.25 * 0.4) = (0.3, 0.7)
    torch.testing.assert_close(ensemble_probs(logits, weights), torch.tensor([[0.3, 0.7]]))


def test_weighted_ensemble_with_no_correct_pattern_weighs_them_equally():
    torch.testing.assert_close(pattern_weights("weighted", [0.0, 0.0]), torch.ones(2))


def test_soft_labels_are_a_temperature_two_softmax_of_the_mean_logits():
    # mean of (0, 4) and (2, 0) is (1, 2); / 2 -> (0.5, 1): p(label 1) = e / (e^0.5 + e)
    logits = torch.tensor([[[0.0, 4.0]], [[2.0, 0.0]]])
    expected = math.e / (math.exp(0.5) + math.e)
    torch.testing.assert_close(
        soft_labels(logits, torch.ones(2), 2.0), torch.tensor([[1 - expected, expected]])
    )
    many = torch.randn(3, 5, 4)
    weights = torch.tensor([0.5, 0.25, 1.0])
    direct = ((weights[:, None, None] * many).sum(0) / weights.sum() / 2).softmax(-1)
    torch.testing.assert_close(soft_labels(many, weights, 2.0), direct)
    torch.testing.assert_close(
        soft_labels(many, torch.ones(3), 2.0), (many.mean(0) / 2).softmax(-1)
    )


def test_distillation_trains_with_the_soft_label_cross_entropy():
    """The classifier's loss given label distributions is -sum q log p (fit.py relies on it)."""
    from fewtune.models.classifier_head import ClassifierModule

    module = ClassifierModule(torch.nn.Identity(), num_labels=3, metric="acc")
    logits, q = torch.randn(4, 3), torch.randn(4, 3).softmax(-1)
    expected = -(q * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(module.loss(logits, q), expected)


def test_ipet_adds_the_most_confident_examples_in_the_training_set_label_shares():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.99, 0.01]])
    assert most_confident(probs, 4, [0.5, 0.5]) == [(4, 0), (0, 0), (2, 1), (3, 1)]
    assert most_confident(probs, 2, [0.5, 0.5]) == [(4, 0), (2, 1)]
    assert (
        added_size(8, 5, 1) == 32 and added_size(8, 5, 2) == 192
    )  # training set x5 per generation


def test_a_pattern_may_bring_its_own_label_words(data_dir, tiny_masked, tmp_path):
    from omegaconf import open_dict

    from fewtune.pet.patterns import pattern_config, task_patterns
    from fewtune.run.build import build

    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "pet"), tmp_path)
    entries = [
        "{sentence} It was {mask} .",
        {"template": "Just {mask} ! {sentence}", "verbalizer": {"0": "bad", "1": "good"}},
    ]
    with open_dict(cfg):
        cfg.task.pet_templates.masked = entries
    plain, own = task_patterns(cfg, load_task("sst2"), "masked")
    assert plain.verbalizer is None and own.record() == entries[1]
    datamodule, _ = build(pattern_config(cfg, own, "masked", tmp_path / "p"))
    assert datamodule.encoder.template.text == "Just {mask} ! {sentence}"
    assert datamodule.encoder.verbalizer.words == ("bad", "good")
    with open_dict(cfg):
        cfg.task.pet_templates.masked = [
            {"template": "Just {mask} !{sentence}", "verbalizer": {"0": "bad"}}
        ]
    with pytest.raises(
        FewtuneError, match=r"pet_templates entry 0: its verbalizer's labels \['0'\] differ"
    ):
        task_patterns(cfg, load_task("sst2"), "masked")


# --- the unlabeled pool --------------------------------------------------------------------------


def test_unlabeled_pool_is_the_original_pool_without_the_k_shot_examples(
    data_dir, tiny_masked, tmp_path
):
    write_original_pool(data_dir)
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "pet"), tmp_path)
    task = load_task("sst2")
    folder = task.split_dir(data_dir, 4, 13)
    kshot = task.read_split(folder, "train") + task.read_split(folder, "dev")
    assert {ex.fields["sentence"] for ex in kshot} == set(NEGATIVE + POSITIVE)

    examples, source = unlabeled_examples(cfg, task, None, None, kshot)
    assert sorted(ex.fields["sentence"] for ex in examples) == sorted(NEW_SENTENCES)
    assert source.endswith("original/SST-2/train.tsv")
    drawn, _ = unlabeled_examples(cfg, task, 5, None, kshot)
    again, _ = unlabeled_examples(cfg, task, 5, None, kshot)
    assert (
        len(drawn) == 5
        and drawn == again
        and {ex.fields["sentence"] for ex in drawn} <= set(NEW_SENTENCES)
    )

    # a file of the user's: one text a line, the K-shot ones left out as well
    file = tmp_path / "mine.txt"
    file.write_text(f"{POSITIVE[0]}\nsomething else entirely\n\n")
    from_file, _ = unlabeled_examples(cfg, task, None, str(file), kshot)
    assert [ex.fields["sentence"] for ex in from_file] == ["something else entirely"]


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def distilled_run(one_thread, tmp_path_factory, tiny_masked):
    """One PET run with the task's four masked patterns and distillation (the defaults)."""
    from conftest import write_sst2_split

    root = tmp_path_factory.mktemp("pet")
    data_dir = write_original_pool(write_sst2_split(root / "data"))
    run_dir = root / "multirun" / "0_sst2-pet-seed13"
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "pet"), run_dir)
    results = train(cfg)
    save_hydra_config(cfg, run_dir)
    return cfg, results, run_dir


def test_pet_with_distillation_writes_the_ensemble_patterns_and_distilled_metrics(distilled_run):
    cfg, results, run_dir = distilled_run
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved == results
    assert saved["method"] == "pet" and saved["metric"] == "acc"
    assert saved["test"] == saved["distilled"] and 0 <= saved["ensemble"]["acc"] <= 1
    assert saved["best_dev"] is not None and saved["ensemble_dev"] is not None
    templates = OmegaConf.to_container(cfg.task.pet_templates.masked)
    assert [p["template"] for p in saved["patterns"]] == templates and len(templates) == 4
    for pattern in saved["patterns"]:
        assert (
            pattern["weight"] == 1.0
            and 0 <= pattern["dev_acc_before"] <= 1
            and "acc" in pattern["test"]
        )
    assert saved["pet"]["unlabeled"] == len(NEW_SENTENCES) and saved["pet"]["ensemble"] == "mean"
    assert saved["scored"] == {"dev": 8, "test": 16, "test_size": 16} and saved["test_complete"]
    assert saved["steps"] == 5 * 4  # four patterns and the distilled model, 4 steps each
    assert saved["precision"] == str(cfg.trainer.precision) != "None"
    for folder in ["pattern-0", "pattern-3", "distilled"]:
        assert (run_dir / folder / "checkpoints" / "best.ckpt").is_file()


def test_table_shows_a_distilled_pet_run_as_two_rows(distilled_run):
    _, results, run_dir = distilled_run
    runs = collect_runs([run_dir.parent])
    table = summarize(runs)
    rows = {row.title: row.cells["sst2"].mean for row in table.rows}
    assert rows == {
        "PET ensemble": results["ensemble"]["acc"],
        "PET distilled": results["distilled"]["acc"],
    }
    assert [row.method for row in table.rows] == ["pet", "pet-distilled"]
    out = make_table([run_dir.parent], out=run_dir.parent / "table")
    assert (
        "| PET ensemble |" in out and "| PET distilled |" in out and "1 of 1 runs complete" in out
    )


def test_weighted_ensemble_without_distillation_needs_no_unlabeled_data(
    data_dir, tiny_causal, tmp_path
):
    """Causal patterns; no original pool exists here, and none is read."""
    overrides = tiny_overrides(
        tiny_causal, data_dir, "pet", "method.ensemble=weighted", "method.distill=false",
        'task.pet_templates.causal=["{sentence} It was {mask}","Review: {sentence} Sentiment: {mask}"]',
    )  # fmt: skip
    cfg = compose_cfg(overrides, tmp_path)
    results = train(cfg)
    assert "distilled" not in results and results["test"] == results["ensemble"]
    assert results["best_dev"] == results["ensemble_dev"]
    assert [p["weight"] for p in results["patterns"]] == [
        p["dev_acc_before"] for p in results["patterns"]
    ]
    save_hydra_config(cfg, tmp_path)
    assert [row.title for row in summarize(collect_runs([tmp_path])).rows] == ["PET ensemble"]


def test_a_pattern_model_trains_exactly_as_method_prompt(data_dir, tiny_masked, tmp_path):
    prompt = train(
        compose_cfg(tiny_overrides(tiny_masked, data_dir, "prompt"), tmp_path / "prompt")
    )
    one = 'task.pet_templates.masked=["{sentence} It was {mask} ."]'  # the task's template
    pet = train(
        compose_cfg(
            tiny_overrides(tiny_masked, data_dir, "pet", one, "method.distill=false"),
            tmp_path / "pet",
        )
    )
    (pattern,) = pet["patterns"]
    assert pattern["best_dev"] == prompt["best_dev"] and pattern["test"] == prompt["test"]
    assert pet["ensemble"] == prompt["test"]  # an ensemble of one is that model
    # the same weights at the best dev step: the same training, step for step
    ours = torch.load(
        tmp_path / "pet" / "pattern-0" / "checkpoints" / "best.ckpt", weights_only=True
    )["state_dict"]
    theirs = torch.load(tmp_path / "prompt" / "checkpoints" / "best.ckpt", weights_only=True)[
        "state_dict"
    ]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_a_pet_smoke_run_says_so_and_stays_out_of_the_table(
    data_dir, tiny_masked, tmp_path, caplog
):
    one = 'task.pet_templates.masked=["{sentence} It was {mask} ."]'
    limits = ("eval_batch_size=4", "trainer.limit_test_batches=1", "method.distill=false")
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "pet", one, *limits), tmp_path)
    with caplog.at_level("INFO", logger="fewtune"):
        results = train(cfg)
    assert results["scored"]["test"] == 4 and results["test_complete"] is False
    assert caplog.records[-1].getMessage().endswith("[smoke run: 4 of 16 test examples]")
    save_hydra_config(cfg, tmp_path)
    (run,) = collect_runs([tmp_path])
    assert run.status == "smoke"


def test_ipet_trains_each_pattern_again_on_examples_the_others_labelled(
    data_dir, tiny_masked, tmp_path
):
    write_original_pool(data_dir)
    overrides = tiny_overrides(
        tiny_masked, data_dir, "pet", TWO_PATTERNS, "method.distill=false", "method.ipet.generations=1",
        "method.ipet.factor=2",
    )  # fmt: skip
    results = train(compose_cfg(overrides, tmp_path))
    first, second = results["pet"]["ipet"]
    assert first["train_sizes"] == [8, 8]
    # 8 more (4 per label), fewer where the other pattern predicts a label for fewer examples
    assert all(8 < size <= 16 for size in second["train_sizes"])
    assert [p["train_size"] for p in results["patterns"]] == second["train_sizes"]
    assert results["ensemble"] == second["ensemble"]
    assert (tmp_path / "ipet-1" / "pattern-1" / "checkpoints" / "best.ckpt").is_file()


def test_pet_with_lora_keeps_only_each_models_trained_weights(data_dir, tiny_masked, tmp_path):
    write_original_pool(data_dir)
    cfg = compose_cfg(
        tiny_overrides(tiny_masked, data_dir, "pet", TWO_PATTERNS, "peft=lora"), tmp_path
    )
    results = train(cfg)
    for folder in ["pattern-0", "pattern-1", "distilled"]:
        assert (tmp_path / folder / "task_weights.safetensors").is_file()
        assert not (tmp_path / folder / "checkpoints").exists()
    assert results["peft"] == "lora" and results["trainable_share"] < 0.5
    save_hydra_config(cfg, tmp_path)
    titles = [row.title for row in summarize(collect_runs([tmp_path])).rows]
    assert titles == ["PET ensemble + LoRA", "PET distilled + LoRA"]


# --- errors --------------------------------------------------------------------------------------


def test_a_task_without_pet_templates_is_refused_naming_the_key(data_dir, tiny_masked, tmp_path):
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "pet", "task=cr"), tmp_path)
    with pytest.raises(
        FewtuneError, match=r"no pet_templates: add 'pet_templates: .* to conf/task/cr\.yaml"
    ):
        train(cfg)


def test_a_missing_unlabeled_pool_fails_before_training_naming_path_and_setting(
    data_dir, tiny_masked, tmp_path
):
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "pet"), tmp_path)
    expected = (
        re.escape(f"{data_dir / 'original' / 'SST-2'} does not exist")
        + r".*method\.unlabeled_file=<file>"
    )
    with pytest.raises(FewtuneError, match=expected) as err:
        train(cfg)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "pattern-0").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method.ensemble=median", r"method.ensemble='median' is unknown"),
        ("method.ipet.generations=-1", r"method.ipet.generations=-1 must be a whole number >= 0"),
        ("exit=all", r"method=pet does not combine with early exit \(exit=all\)"),
        ('task.pet_templates.masked=["{sentence} It was ."]', r"must have exactly one answer slot"),
    ],
)
def test_bad_settings_are_refused_before_anything_loads(
    override, message, data_dir, tiny_masked, tmp_path
):
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "pet", override), tmp_path)
    with pytest.raises(FewtuneError, match=message):
        train(cfg)


def test_evaluate_refuses_a_pet_run_in_one_line(distilled_run):
    from fewtune.evaluate import main as evaluate_main

    with pytest.raises(SystemExit, match="is a PET run") as err:
        evaluate_main([str(distilled_run[2])])
    assert "\n" not in str(err.value)
