"""Sentence-pair and regression tasks (issue 3): MNLI, SNLI, QNLI, RTE, MRPC, QQP, STS-B.

Real data from ../shared/data (row counts and labels as its README says), both families'
templates, JSONL test sets, missing test files and test_split, and STS-B's two heads.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import SHARED_DATA, compose_cfg, load_task, task_config, tiny_overrides
from fewtune.data.encoding import PromptEncoder
from fewtune.data.prompts import Template
from fewtune.data.tasks import Example, TaskSpec, check_k_shot, read_examples
from fewtune.data.verbalizers import Verbalizer
from fewtune.errors import FewtuneError
from fewtune.models.base import regression_loss, score
from fewtune.run.build import build
from fewtune.train import train

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")

# name: (train, dev, test) rows of 16-42; None: the test file is not in ../shared/data.
SIZES = {
    "mnli": (48, 48, 9815),
    "mnli-mm": (48, 48, None),
    "snli": (48, 48, 9842),
    "qnli": (32, 32, 5463),
    "rte": (32, 32, 277),
    "mrpc": (32, 32, 408),
    "qqp": (32, 32, None),
    "stsb": (32, 32, 1500),
}
FAMILIES = {"masked": "tiny_masked", "causal": "tiny_causal"}


config, task = task_config, load_task


@needs_data
@pytest.mark.parametrize("name", SIZES)
def test_real_data_loads_with_the_readme_counts_and_labels(name):
    spec = task(name)
    folder = spec.split_dir(SHARED_DATA, 16, 42)
    train_rows, dev_rows, test_rows = SIZES[name]
    splits = {s: spec.read_split(folder, s, SHARED_DATA) for s in ("train", "dev")}
    if test_rows is None:
        with pytest.raises(
            FewtuneError, match=r"the test file .* does not exist; .*test_split=dev"
        ):
            spec.read_split(folder, "test", SHARED_DATA)
    else:
        splits["test"] = spec.read_split(folder, "test", SHARED_DATA)
        assert len(splits["test"]) == test_rows
    assert (len(splits["train"]), len(splits["dev"])) == (train_rows, dev_rows)
    for split, examples in splits.items():
        assert all(ex.fields["sentence1"] and ex.fields["sentence2"] for ex in examples)
        if spec.regression:
            scores = [float(ex.label) for ex in examples]
            assert 0.0 <= min(scores) and max(scores) <= 5.0 and len(set(scores)) > 5
        else:
            assert {ex.label for ex in examples} == set(spec.labels)  # every class, nothing else
            if split != "test":
                check_k_shot(spec, examples, 16, split)  # K=16 per class


@needs_data
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name", SIZES)
def test_every_train_example_renders_with_the_slot_and_single_token_words(
    name, family, bert_tokenizer, bpe_tokenizer
):
    spec = task(name)
    tokenizer = bert_tokenizer if family == "masked" else bpe_tokenizer
    template = Template(spec.templates[family])
    template.check(spec.text_fields, causal=family == "causal", task=name)
    enc = PromptEncoder(
        tokenizer, template, Verbalizer(spec.verbalizer, spec.answer_keys), 128, family == "causal"
    )
    assert len(set(enc.label_word_ids)) == len(spec.answer_keys)
    for ex in spec.read_split(spec.split_dir(SHARED_DATA, 16, 42), "train", SHARED_DATA):
        out = enc.encode(ex, spec.target(ex.label))
        assert len(out.input_ids) <= 128
        if family == "masked":
            assert out.input_ids[out.slot] == tokenizer.mask_token_id
        else:
            assert out.slot == len(out.input_ids) - 1


def test_rte_templates_render_to_exact_tokens(bert_tokenizer, bpe_tokenizer):
    spec = task("rte")
    words = Verbalizer(spec.verbalizer, spec.labels)
    ex = Example({"sentence1": "A man sleeps.", "sentence2": "He is awake."}, "not_entailment")

    masked = PromptEncoder(
        bert_tokenizer, Template(spec.templates["masked"]), words, 64, causal=False
    )
    out = masked.encode(ex, spec.target(ex.label))
    assert bert_tokenizer.convert_ids_to_tokens(out.input_ids) == [
        "[CLS]",
        "a",
        "man",
        "sleeps",
        "?",
        "[MASK]",
        ",",
        "he",
        "is",
        "awake",
        ".",
        "[SEP]",
    ]  # fmt: skip  (LM-BFF drops the premise's final "." and lowercases "He")
    assert out.slot == 5 and out.label == 1
    assert bert_tokenizer.convert_ids_to_tokens(masked.label_word_ids) == ["yes", "no"]

    causal = PromptEncoder(
        bpe_tokenizer, Template(spec.templates["causal"]), words, 64, causal=True
    )
    out = causal.encode(ex, spec.target(ex.label))
    tokens = bpe_tokenizer.convert_ids_to_tokens(out.input_ids)
    assert tokens == [
        "A", "Ġman", "Ġsleep", "s", ".", "ĠQuestion", ":", "ĠHe", "Ġis", "Ġawake", ".",
        "ĠYes", "Ġor", "ĠNo", "?", "ĠAnswer", ":"
    ]  # fmt: skip
    assert out.slot == len(tokens) - 1
    assert bpe_tokenizer.convert_ids_to_tokens(causal.label_word_ids) == ["ĠYes", "ĠNo"]


def test_jsonl_split_with_its_own_path_format_and_columns(tmp_path):
    cfg = config("snli")
    cfg["splits"]["test"] = {"path": "extra/test.jsonl", "format": "jsonl", "columns": {
        "sentence1": "premise", "sentence2": "hypothesis", "label": "label"}}  # fmt: skip
    spec = TaskSpec.from_config(cfg)
    folder = tmp_path / "k-shot" / "SNLI" / "16-42"
    folder.mkdir(parents=True)
    (tmp_path / "extra").mkdir()
    rows = [{"premise": "A dog runs.", "hypothesis": "An animal moves.", "label": "entailment"}, {}]
    rows[1] = {
        "premise": " Two men. ",
        "hypothesis": "Nobody.",
        "label": "contradiction",
        "extra": 1,
    }
    (tmp_path / "extra" / "test.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n\n")
    examples = spec.read_split(folder, "test", tmp_path)
    assert [(e.fields["sentence1"], e.fields["sentence2"], e.label) for e in examples] == [
        ("A dog runs.", "An animal moves.", "entailment"),
        ("Two men.", "Nobody.", "contradiction"),
    ]


def test_snli_gold_label_is_the_last_column_of_long_rows(tmp_path):
    header = "index\tcaptionID\tpairID\tb1\tb2\tp1\tp2\tsentence1\tsentence2\tlabel1\tgold_label"
    short = "0\tc\tp\tb\tb\tp\tp\tA dog.\tAn animal.\tneutral\tentailment"
    long = "1\tc\tp\tb\tb\tp\tp\tA cat.\tA dog.\tneutral\tcontradiction\tcontradiction\tneutral\tneutral\tcontradiction"
    path = tmp_path / "train.tsv"
    path.write_text("\n".join([header, short, long]) + "\n")
    examples = read_examples(task("snli"), path)
    assert [(e.fields["sentence1"], e.label) for e in examples] == [
        ("A dog.", "entailment"),
        ("A cat.", "contradiction"),
    ]


def test_mrpc_reads_its_byte_order_mark_header(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_bytes(
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tOne .\tTwo .\n".encode()
    )
    (ex,) = read_examples(task("mrpc"), path)
    assert (ex.fields, ex.label) == ({"sentence1": "One .", "sentence2": "Two ."}, "1")


def test_stsb_score_outside_the_range(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence1\tsentence2\tscore\na\tb\t5.0\na\tb\t7.5\n")
    with pytest.raises(
        FewtuneError,
        match=r"line 3: score '7.5' is not a number in task 'stsb' score_range \[0, 5\]",
    ):
        read_examples(task("stsb"), path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"labels": ["0", "1"]}, "a regression task has a score, not 'labels'"),
        ({"score_range": None}, r"needs 'score_range: \[min, max\]'"),
        (
            {"metric": "acc"},
            r"metric 'acc' does not apply to a regression task .*\['pearson', 'spearman'\]",
        ),
        ({"verbalizer": {"0": "No", "1": "Yes"}}, r"must be \['low', 'high'\]"),
        (
            {"verbalizer": {"low": False, "high": True}},
            r"the label word of 'low' is False, not text; quote it",
        ),
        (
            {"splits": {"train": "a", "dev": "b", "test": {"file": "c"}}},
            "must be a file name or a mapping with 'path'",
        ),
    ],
)
def test_task_config_mistakes_are_clear(change, message):
    cfg = {**config("stsb"), **change}
    with pytest.raises(FewtuneError, match=message):
        TaskSpec.from_config(cfg)


def test_stsb_target_is_the_score_scaled_to_zero_one():
    spec = task("stsb")
    assert [spec.target(s) for s in ("0", "2.5", "5.000")] == [0.0, 0.5, 1.0]
    assert spec.answer_keys == ("low", "high") and spec.num_outputs == 1


def test_two_word_score_and_loss_follow_lm_bff():
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])  # p(Yes) = 1/2, 3/4
    torch.testing.assert_close(score(logits), torch.tensor([0.5, 0.75]))
    # KL(target || p) is zero where p(Yes) is the target score, positive elsewhere.
    assert regression_loss(logits, torch.tensor([0.5, 0.75])).item() == pytest.approx(0.0, abs=1e-7)
    assert regression_loss(logits, torch.tensor([1.0, 0.0])).item() > 0.1
    head = torch.tensor([[0.2], [0.9]])
    torch.testing.assert_close(score(head), torch.tensor([0.2, 0.9]))
    assert regression_loss(head, torch.tensor([0.0, 1.0])).item() == pytest.approx(
        (0.04 + 0.01) / 2
    )


def run_overrides(name: str, model_dir: Path, method: str, *extra: str) -> list[str]:
    mine = {"task": name, "k": "16", "seed": "42"}
    overrides = [
        o for o in tiny_overrides(model_dir, SHARED_DATA, method) if o.split("=")[0] not in mine
    ]
    # a couple of steps, one dev batch, two test batches: the full pipeline, quickly
    return (
        overrides
        + [f"{key}={value}" for key, value in mine.items()]
        + [*extra]
        + [
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=2",
            "task.max_length=128",  # the tiny BERT has 128 positions
        ]
    )


@needs_data
@pytest.mark.parametrize(
    "name, method, family",
    [
        ("mnli", "prompt", "causal"),
        ("snli", "finetune", "masked"),
        ("qnli", "prompt", "masked"),
        ("rte", "finetune", "causal"),
        ("mrpc", "prompt", "causal"),
        ("mrpc", "finetune", "masked"),
    ],
)
def test_pair_task_runs_end_to_end(name, method, family, tmp_path, request):
    model_dir = request.getfixturevalue(FAMILIES[family])
    results = train(compose_cfg(run_overrides(name, model_dir, method), tmp_path))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == results and saved["task"] == name and saved["test_split"] == "test"
    metric = task(name).metric
    assert set(saved["test"]) == {metric, "acc"} and 0.0 <= saved["test"][metric] <= 1.0
    assert saved["steps"] == 2 and saved["best_dev"] is not None


@needs_data
@pytest.mark.parametrize("name, method", [("qqp", "prompt"), ("mnli-mm", "finetune")])
def test_missing_test_file_is_a_clear_error_and_test_split_dev_falls_back(
    name, method, tiny_causal, tmp_path
):
    overrides = run_overrides(name, tiny_causal, method)
    missing = {"qqp": "QQP/16-42/test.tsv", "mnli-mm": "MNLI/16-42/test_mismatched.tsv"}[name]
    with pytest.raises(
        FewtuneError, match=rf"the test file \S+{missing} does not exist; .*test_split=dev"
    ):
        train(compose_cfg([*overrides, "model.path=/nonexistent"], tmp_path / "missing"))
    results = train(compose_cfg([*overrides, "test_split=dev"], tmp_path / "dev"))
    assert results["test_split"] == "dev" and results["steps"] == 2
    assert json.loads((tmp_path / "dev" / "metrics.json").read_text())["test_split"] == "dev"


def test_unknown_test_split(data_dir, tiny_causal, tmp_path):
    with pytest.raises(
        FewtuneError, match=r"split 'validation' is not one of \['train', 'dev', 'test'\]"
    ):
        train(
            compose_cfg(
                tiny_overrides(tiny_causal, data_dir, "zeroshot", "test_split=validation"), tmp_path
            )
        )


@needs_data
@pytest.mark.parametrize(
    "method, family",
    [("prompt", "masked"), ("prompt", "causal"), ("finetune", "causal"), ("zeroshot", "causal")],
)
def test_stsb_reports_pearson_and_spearman(method, family, tmp_path, request):
    model_dir = request.getfixturevalue(FAMILIES[family])
    cfg = compose_cfg(run_overrides("stsb", model_dir, method), tmp_path)
    module = build(cfg)[1]
    assert module.regression and module.num_labels == (
        1 if method == "finetune" else 2
    )  # a regression head, or No/Yes
    results = train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == results and saved["metric"] == "pearson"
    assert set(saved["test"]) == {"pearson", "spearman"}
    assert all(-1.0 <= v <= 1.0 for v in saved["test"].values())
    assert saved["best_dev"] is not None
