"""Significance marks and confusion matrices in python -m fewtune.table, from stored predictions
(written by hand here, with known effects)."""

import csv
import io

import numpy as np
import pytest
import torch

from fake_runs import fake_run
from fewtune.predictions.rescore import rescore
from fewtune.predictions.significance import weighted_metric
from fewtune.predictions.store import Predictions, path_of
from fewtune.run.metrics import build_metrics, to_floats
from fewtune.table import make_table

SEEDS = (13, 21, 42, 87, 100)
N = 300


def meta(task="sst2", metric="acc", labels=("0", "1"), regression=False) -> dict:
    return {"task": task, "split": "test", "split_file": "test.tsv", "metric": metric, "regression": regression,
            "labels": list(labels), "label_words": {"0": "terrible", "1": "great"}, "score_range": None}  # fmt: skip


def predictions_with_accuracy(gold: np.ndarray, accuracy: float, rng) -> Predictions:
    """Predictions right on a random ``accuracy`` share of the examples."""
    right = rng.permutation(len(gold)) < round(accuracy * len(gold))
    pred = np.where(right, gold, 1 - gold)
    probs = np.stack([1 - pred, pred], 1) * 0.8 + 0.1
    return Predictions.build(meta(), np.arange(len(gold)), gold, probs=probs)


def grid(root, accuracies: dict[str, list[float]], seed_free: dict[str, float] = ()) -> None:
    """Runs of each method (and seed) whose stored predictions have the given accuracies."""
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, N)
    for method, per_seed in accuracies.items():
        for seed, accuracy in zip(SEEDS, per_seed):
            predictions = predictions_with_accuracy(gold, accuracy, rng)
            run = fake_run(root, "sst2", method, seed, rescore(predictions)["acc"])
            predictions.write(path_of(run, "test"))
    for method, accuracy in dict(seed_free).items():
        predictions = predictions_with_accuracy(gold, accuracy, rng)
        predictions.write(
            path_of(fake_run(root, "sst2", method, 13, rescore(predictions)["acc"]), "test")
        )


def pairs(out) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "significance.csv").read_text())))


def test_a_clear_gain_is_marked_and_the_caption_names_the_test(tmp_path):
    grid(tmp_path / "runs", {"prompt": [0.9, 0.91, 0.89, 0.9, 0.92], "finetune": [0.7, 0.72, 0.69, 0.71, 0.7]},
         seed_free={"zeroshot": 0.6})  # fmt: skip
    make_table([tmp_path / "runs"], tmp_path / "out", resamples=2000)
    markdown = (tmp_path / "out" / "table.md").read_text()
    latex = (tmp_path / "out" / "table.tex").read_text()
    # rows (a) zero-shot, (b) fine-tuning, then prompt, which beats both and is beaten by none (no letter)
    lines = {line.split(" | ")[0]: line for line in markdown.splitlines() if line.startswith("| ")}
    assert lines["| Prompt-based FT"].endswith(")<sup>ab</sup> |")
    assert lines["| (b) Fine-tuning"].endswith(")<sup>a</sup> |") and lines[
        "| (a) Zero-shot prompt"
    ].endswith("60.0 |")
    assert "$^{ab}$" in latex and "(b) Fine-tuning" in latex
    assert (
        "paired two-level bootstrap over the shared seeds and the test examples, 2000 resamples"
        in markdown
    )
    assert "Holm-adjusted" in latex
    found = {(p["method_a"], p["method_b"]): p for p in pairs(tmp_path / "out")}
    assert {(p["row_a"], p["row_b"]) for p in found.values()} == {
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
    }
    assert set(found) == {("zeroshot", "finetune"), ("zeroshot", "prompt"), ("finetune", "prompt")}
    prompt_vs_finetune = found[("finetune", "prompt")]
    assert (
        prompt_vs_finetune["seeds"] == "13 21 42 87 100"
        and prompt_vs_finetune["significant"] == "yes"
    )
    assert float(prompt_vs_finetune["diff"]) == pytest.approx(-0.2, abs=0.01)
    assert (
        float(prompt_vs_finetune["p_bootstrap"]) < 0.01
        and float(prompt_vs_finetune["p_ttest_seeds"]) < 0.01
    )
    # the zero-shot run is one seed-free run: it pairs with each of the other rows' five seeds
    assert found[("zeroshot", "prompt")]["seeds"] == "13 21 42 87 100"
    assert (tmp_path / "out" / "confusion" / "sst2_prompt_tiny_k16.png").stat().st_size > 1000


def test_a_gap_that_flips_between_seeds_is_not_significant(tmp_path):
    # 2 points better on average, but the seeds disagree by +-10 points: a bootstrap over the test
    # examples of one seed would call each seed's gap significant; over seeds it is not
    grid(
        tmp_path / "runs",
        {"prompt": [0.9, 0.7, 0.9, 0.7, 0.82], "finetune": [0.8, 0.8, 0.8, 0.8, 0.7]},
    )
    make_table([tmp_path / "runs"], tmp_path / "out", resamples=2000)
    (pair,) = pairs(tmp_path / "out")
    assert (pair["method_a"], pair["method_b"]) == ("finetune", "prompt")
    assert float(pair["diff"]) == pytest.approx(0.78 - 0.804, abs=1e-6)
    assert pair["significant"] == "no" and float(pair["p_bootstrap"]) > 0.2
    markdown = (tmp_path / "out" / "table.md").read_text()
    assert "<sup>" not in markdown and "(a)" not in markdown
    assert "No two rows differ significantly in any column (paired two-level bootstrap" in markdown


def test_identical_predictions_differ_by_nothing(tmp_path):
    grid(tmp_path / "runs", {"prompt": [0.8] * 5})
    for seed in SEEDS:  # finetune: a copy of prompt's predictions
        src = next((tmp_path / "runs").glob(f"sst2-prompt-none-k16-seed{seed}"))
        run = fake_run(tmp_path / "runs", "sst2", "finetune", seed, 0.8)
        path_of(run, "test").parent.mkdir()
        path_of(run, "test").write_bytes(path_of(src, "test").read_bytes())
    make_table([tmp_path / "runs"], tmp_path / "out", resamples=500)
    (pair,) = pairs(tmp_path / "out")
    assert (
        float(pair["diff"]) == 0 and float(pair["p_bootstrap"]) == 1 and pair["significant"] == "no"
    )


def test_runs_without_predictions_leave_the_table_as_it_was(tmp_path):
    from fake_runs import fake_grid

    fake_grid(tmp_path / "runs")
    summary = make_table([tmp_path / "runs"], tmp_path / "out")
    assert (
        "significance.csv" not in summary and not (tmp_path / "out" / "significance.csv").exists()
    )
    assert "(a)" not in (tmp_path / "out" / "table.md").read_text()


@pytest.mark.parametrize("metric", ["acc", "mcc", "f1"])
def test_the_bootstrap_metric_with_every_example_once_is_the_tasks_metric(metric):
    rng = np.random.default_rng(1)
    gold, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    probs = np.eye(3)[pred] * 0.7 + 0.1
    p = Predictions.build(
        meta(metric=metric, labels=("0", "1", "2")), np.arange(200), gold, probs=probs
    )
    assert weighted_metric(p, np.ones((1, 200)))[0] == pytest.approx(rescore(p)[metric], abs=1e-6)
    # two copies of every example: the same metric
    assert weighted_metric(p, np.full((1, 200), 2.0))[0] == pytest.approx(
        rescore(p)[metric], abs=1e-6
    )


@pytest.mark.parametrize("metric", ["pearson", "spearman"])
def test_the_bootstrap_correlation_with_every_example_once_is_torchmetrics(metric):
    rng = np.random.default_rng(2)
    gold = rng.integers(0, 6, 100) / 5  # ties, as STS-B's scores have
    score = np.clip(gold + rng.normal(0, 0.3, 100), 0, 1).astype(np.float32)
    p = Predictions.build(
        meta(task="stsb", metric=metric, labels=(), regression=True),
        np.arange(100),
        gold,
        score=score,
    )
    expected = build_metrics(metric, 1, "")
    expected.update(torch.from_numpy(score), torch.from_numpy(gold.astype(np.float32)))
    assert weighted_metric(p, np.ones((1, 100)))[0] == pytest.approx(
        to_floats(expected.compute())[metric], abs=1e-5
    )
    # resampled: the metric of the explicit resampled set
    counts = rng.multinomial(100, np.full(100, 0.01))
    again = np.repeat(np.arange(100), counts)
    resampled = build_metrics(metric, 1, "")
    resampled.update(
        torch.from_numpy(score[again]), torch.from_numpy(gold[again].astype(np.float32))
    )
    value = weighted_metric(p, counts[None].astype(float))[0]
    assert value == pytest.approx(to_floats(resampled.compute())[metric], abs=1e-5)
