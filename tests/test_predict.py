"""python -m fewtune.predict: a finished run of any method labels new texts as its test phase did."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED_DATA
from fewtune.errors import FewtuneError
from fewtune.predict import main, predict
from fewtune.predictions.inputs import InputTable, column_map
from fewtune.predictions.store import read_run
from prediction_runs import NEEDS_SHARED_DATA, RUNS, finished_run

pytestmark = pytest.mark.usefixtures("one_thread")


def method_runs():
    for name in RUNS:
        skip = name in NEEDS_SHARED_DATA and not SHARED_DATA.is_dir()
        yield pytest.param(name, marks=pytest.mark.skipif(skip, reason="needs ../shared/data"))


def split_file_of(run_dir):
    meta = read_run(run_dir).meta
    data = SHARED_DATA if meta["task"] == "stsb" else run_dir.parent / "data"
    return data / meta["split_file"]


@pytest.mark.parametrize("name", method_runs())
def test_predicting_the_runs_own_test_file_gives_its_stored_test_predictions(
    name, request, tmp_path_factory, tmp_path
):
    run = finished_run(name, request, tmp_path_factory)
    stored = read_run(run)
    out = predict(run, split_file_of(run), tmp_path / "out.parquet", progress="none")
    assert pd.read_parquet(tmp_path / "out.parquet").equals(out)
    rows = out.iloc[stored.frame["index"]]  # STS-B's run tested two batches of the file
    if stored.regression:
        low, high = stored.meta["score_range"]
        assert np.array_equal(
            rows["predicted_score"].to_numpy(),
            low + stored.frame["score"].to_numpy().astype(float) * (high - low),
        )
        return
    assert len(out) == len(stored.frame)
    assert [stored.labels.index(label) for label in rows["predicted_label"]] == stored.frame[
        "pred"
    ].tolist()
    for column in stored.prob_columns:
        assert np.array_equal(rows[column].to_numpy(), stored.frame[column].to_numpy())


def test_a_users_csv_gets_one_labelled_row_per_input(request, tmp_path_factory, tmp_path):
    run = finished_run(
        "prompt-lora", request, tmp_path_factory
    )  # peft weights over the shared backbone
    texts = ['a "great", moving film', "dull , and far too long", "", "terrible"] * 3
    pd.DataFrame({"id": range(len(texts)), "review": texts}).to_csv(
        tmp_path / "mine.csv", index=False
    )
    main(
        [
            str(run),
            "--input",
            str(tmp_path / "mine.csv"),
            "--text-column",
            "review",
            "--out",
            str(tmp_path / "out.csv"),
        ]
    )
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert list(out.columns) == [
        "id",
        "review",
        "predicted_label",
        "predicted_word",
        "prob_0",
        "prob_1",
    ]
    assert out["review"].tolist() == texts and out["id"].tolist() == list(range(len(texts)))
    assert set(out["predicted_word"]) <= {"terrible", "great"} and np.allclose(
        out[["prob_0", "prob_1"]].sum(1), 1
    )
    # the same text, wherever it stands in the file, gets the same prediction
    assert out.groupby("review")["prob_1"].nunique().eq(1).all()


def test_jsonl_in_tsv_out_with_a_field_named(request, tmp_path_factory, tmp_path):
    run = finished_run("finetune", request, tmp_path_factory)
    lines = [json.dumps({"text": t, "n": i}) for i, t in enumerate(["fun", "awful", "great great"])]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    predict(run, tmp_path / "in.jsonl", tmp_path / "out.tsv", ["sentence=text"], progress="log")
    out = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert (
        out["text"].tolist() == ["fun", "awful", "great great"]
        and out["predicted_label"].isin([0, 1]).all()
    )


def one_line_error(argv, capsys=None) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    message = str(exit_.value)
    assert message.startswith("error: ") and "\n" not in message
    return message


def test_bad_inputs_are_refused_in_one_line_before_loading(request, tmp_path_factory, tmp_path):
    run = finished_run("prompt", request, tmp_path_factory)
    (tmp_path / "texts.csv").write_text("review,id\nfine,1\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.tsv").write_text("sentence\tlabel\n")
    (tmp_path / "texts.xlsx").write_text("x")
    out = ["--out", str(tmp_path / "o.csv")]
    assert (
        "has no column 'sentence' for the template's field 'sentence'; its columns: review, id; choose one with --text-column <column>"
        in one_line_error([str(run), "--input", str(tmp_path / "texts.csv"), *out])
    )
    assert "has no column 'text'" in one_line_error(
        [str(run), "--input", str(tmp_path / "texts.csv"), "--text-column", "text", *out]
    )
    assert "empty.csv is empty: nothing to predict" in one_line_error(
        [str(run), "--input", str(tmp_path / "empty.csv"), *out]
    )
    assert "header line but no rows" in one_line_error(
        [str(run), "--input", str(tmp_path / "header.tsv"), *out]
    )
    assert "cannot tell its format from '.xlsx'" in one_line_error(
        [str(run), "--input", str(tmp_path / "texts.xlsx"), *out]
    )
    assert "does not exist" in one_line_error(
        [str(run), "--input", str(tmp_path / "nope.csv"), *out]
    )
    assert "--out" in one_line_error(
        [str(run), "--input", str(tmp_path / "texts.csv"), "--out", str(tmp_path / "o.xlsx")]
    )
    assert not (tmp_path / "o.csv").exists()


def test_a_run_without_weights_or_unfinished_is_refused_in_one_line(
    request, tmp_path_factory, tmp_path
):
    run = finished_run("finetune", request, tmp_path_factory)
    (tmp_path / "texts.csv").write_text("sentence\nfine\n")
    args = ["--input", str(tmp_path / "texts.csv"), "--out", str(tmp_path / "o.csv")]
    copy = tmp_path / "no-weights"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints"))
    assert "kept no trained weights" in one_line_error([str(copy), *args])
    assert "delete_checkpoints=true" in one_line_error([str(copy), *args])
    (copy / "metrics.json").unlink()
    assert "the run did not finish" in one_line_error([str(copy), *args])
    assert ".hydra/config.yaml is missing" in one_line_error([str(tmp_path), *args])


def test_text_columns_by_position_or_by_field():
    table = InputTable(
        path="in.csv", columns=["a", "b", "c"], rows=[{"a": "1", "b": "2", "c": "3"}]
    )
    fields = ("sentence1", "sentence2")
    assert column_map(["b", "a"], fields, table) == {"sentence1": "b", "sentence2": "a"}
    assert column_map(["sentence2=c", "sentence1=a"], fields, table) == {
        "sentence1": "a",
        "sentence2": "c",
    }
    with pytest.raises(
        FewtuneError, match=r"given 1 column\(s\) but the task's template has 2 field\(s\)"
    ):
        column_map(["a"], fields, table)
    with pytest.raises(FewtuneError, match="the task has no field 'premise'"):
        column_map(["premise=a", "sentence2=b"], fields, table)
    with pytest.raises(FewtuneError, match=r"choose one with --text-column sentence1=<column>"):
        column_map([], fields, table)


def test_a_method_with_its_own_runner_needs_a_predict_hook(tmp_path):
    from omegaconf import OmegaConf

    from fewtune.predict import check_predictable
    from fewtune.run import methods

    mine = OmegaConf.create({"method": {"name": "mine", "runner": "fewtune.run.single.run"}})
    with pytest.raises(
        FewtuneError,
        match=r"method=mine run made by the method's own runner, which names no predict hook",
    ):
        check_predictable(tmp_path, mine)
    # a builder rebuilds its one model as evaluate does (SetFit): predicted as any single model
    check_predictable(tmp_path, OmegaConf.create({"method": {**mine.method, "builder": "x.y"}}))
    # a PET run saved before the hook existed gets it from today's conf/method/pet.yaml
    old_pet = {
        "name": "pet",
        "runner": "fewtune.pet.run.train_pet",
        "evaluate": "fewtune.pet.run.refuse_evaluate",
    }
    assert methods.hook(old_pet, "predict").__name__ == "predict_texts"
