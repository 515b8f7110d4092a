"""Stored per-example predictions (fewtune/predictions/): every method writes dev and test files
whose rows are the split's examples, and re-scoring them gives metrics.json exactly."""

import json

import numpy as np
import pytest

from conftest import SHARED_DATA, load_task
from fewtune.predictions.rescore import rescore
from fewtune.predictions.store import path_of, read, read_run
from prediction_runs import NEEDS_SHARED_DATA, RUNS, finished_run

pytestmark = pytest.mark.usefixtures("one_thread")


def method_runs():
    for name in RUNS:
        skip = name in NEEDS_SHARED_DATA and not SHARED_DATA.is_dir()
        yield pytest.param(name, marks=pytest.mark.skipif(skip, reason="needs ../shared/data"))


@pytest.fixture
def run(request, tmp_path_factory):
    return finished_run(request.param, request, tmp_path_factory)


def metrics_of(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("run", method_runs(), indirect=True)
def test_rescoring_the_stored_test_predictions_gives_metrics_json_exactly(run):
    saved = metrics_of(run)
    assert rescore(read_run(run, "test")) == saved["test"]
    if saved["method"] == "pet":  # the ensemble and each pattern have files of their own
        assert rescore(read_run(run, "test", "ensemble-")) == saved["ensemble"]
        for i, pattern in enumerate(saved["patterns"]):
            assert rescore(read_run(run, "test", f"pattern-{i}-")) == pattern["test"]
        assert rescore(read_run(run, "dev", "ensemble-"))[saved["metric"]] == saved["ensemble_dev"]
    if "exit" in run.name:
        assert "exit_layers" in saved["test"] and "exit_layer" in read_run(run).frame


@pytest.mark.parametrize("run", method_runs(), indirect=True)
def test_the_dev_predictions_are_those_of_the_tested_weights(run):
    saved = metrics_of(run)
    assert rescore(read_run(run, "dev"))[saved["metric"]] == saved["best_dev"]


@pytest.mark.parametrize("run", method_runs(), indirect=True)
def test_each_row_is_its_examples_line_with_the_gold_label_from_the_file(run):
    saved = metrics_of(run)
    for split in ("dev", "test"):
        predictions = read_run(run, split)
        task = load_task(saved["task"])
        folder = task.split_dir(
            SHARED_DATA if task.name == "stsb" else run.parent / "data",
            saved["k"],
            saved["data_seed"],
        )
        examples = task.read_split(folder, split)
        frame = predictions.frame
        assert frame["index"].is_monotonic_increasing and frame["index"].iloc[-1] < len(examples)
        gold = [task.target(examples[i].label) for i in frame["index"]]
        assert np.allclose(frame["gold"].to_numpy(), gold)
        assert predictions.meta["split"] == split and predictions.meta["split_file"].endswith(
            f"{split}.tsv"
        )
        if task.regression:
            assert frame["score"].between(0, 1).all()
            continue
        probs = predictions.probs()
        assert np.allclose(probs.sum(1), 1, atol=1e-5)
        assert (probs.argmax(1) == frame["pred"].to_numpy()).all()
        if split == "test":  # accuracy counted here, independently of torchmetrics
            assert saved["test"]["acc"] == pytest.approx(
                (frame["pred"] == frame["gold"]).mean(), abs=1e-6
            )


def test_every_method_predicts_differently_for_some_examples(request, tmp_path_factory):
    # the checks above would hold for a model that predicts one label everywhere
    frame = read_run(finished_run("prompt", request, tmp_path_factory)).frame
    assert frame["pred"].nunique() == 2 and frame["prob_1"].nunique() > 2


def test_rescoring_reads_the_file(request, tmp_path_factory, tmp_path):
    run = finished_run("finetune", request, tmp_path_factory)
    predictions = read_run(run)
    before = rescore(predictions)["acc"]
    predictions.frame.loc[0, "pred"] = 1 - predictions.frame.loc[0, "pred"]
    predictions.write(tmp_path / "changed.parquet")
    after = rescore(read(tmp_path / "changed.parquet"))["acc"]
    assert after == pytest.approx(
        before
        + (1 if predictions.frame.loc[0, "pred"] == predictions.frame.loc[0, "gold"] else -1) / 24
    )


def test_the_label_words_and_task_are_in_the_files_metadata(request, tmp_path_factory):
    meta = read_run(finished_run("prompt-autowords", request, tmp_path_factory)).meta
    assert meta["task"] == "sst2" and meta["labels"] == ["0", "1"] and meta["metric"] == "acc"
    assert meta["label_words"] == {"0": "bad", "1": "good"}  # the searched words, not the task's


def test_a_missing_file_says_what_is_missing(tmp_path):
    from fewtune.errors import FewtuneError

    with pytest.raises(
        FewtuneError, match=r"test.parquet is missing: the run stored no predictions"
    ):
        read_run(tmp_path)
    assert path_of(tmp_path, "dev") == tmp_path / "predictions" / "dev.parquet"


def test_wandb_gets_the_dev_and_test_predictions_as_tables(
    data_dir, tiny_masked, tmp_path, monkeypatch
):
    from conftest import compose_cfg, tiny_overrides
    from fewtune.run.loggers import finish_wandb as _finish_wandb
    from fewtune.train import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    try:
        train(
            compose_cfg(
                tiny_overrides(tiny_masked, data_dir, "prompt", "logger=wandb"), tmp_path / "run"
            )
        )
    finally:
        _finish_wandb()
    tables = {
        p.name.split("_")[0]: p
        for p in (tmp_path / "run").glob(
            "wandb/offline-run-*/files/media/table/predictions/*.table.json"
        )
    }
    assert set(tables) == {"dev", "test"}
    test = json.loads(tables["test"].read_text())
    assert test["columns"][:5] == ["index", "gold", "gold_label", "pred", "pred_label"]
    assert len(test["data"]) == 16 and [row[0] for row in test["data"]] == list(range(16))


def test_an_archive_keeps_the_predictions_unless_asked_not_to(request, tmp_path_factory, tmp_path):
    from fewtune.archive import archive

    run = finished_run("pet", request, tmp_path_factory)
    (run / "checkpoints").mkdir(exist_ok=True)
    archive([run], tmp_path / "results")
    kept = tmp_path / "results" / run.name
    assert sorted(p.name for p in (kept / "predictions").iterdir()) == sorted(
        p.name for p in (run / "predictions").iterdir()
    )
    assert rescore(read_run(kept)) == metrics_of(kept)["test"]
    archive([run], tmp_path / "lean", predictions=False)
    assert not (tmp_path / "lean" / run.name / "predictions").exists()


def test_a_pet_runs_ensemble_and_distilled_rows_are_tested_with_their_own_predictions(
    request, tmp_path_factory, tmp_path
):
    import csv

    from fewtune.table import make_table

    run = finished_run("pet", request, tmp_path_factory)
    saved = metrics_of(run)
    make_table([run], tmp_path, resamples=200)
    (pair,) = csv.DictReader((tmp_path / "significance.csv").open())
    assert (pair["method_a"], pair["method_b"]) == ("pet", "pet-distilled")
    assert float(pair["mean_a"]) == pytest.approx(saved["ensemble"]["acc"], abs=1e-6)
    assert float(pair["mean_b"]) == pytest.approx(saved["distilled"]["acc"], abs=1e-6)
    assert {p.name for p in (tmp_path / "confusion").iterdir()} == {
        f"sst2_pet_{saved['model']}_k4.png",
        f"sst2_pet-distilled_{saved['model']}_k4.png",
    }
