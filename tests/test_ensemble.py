"""python -m fewtune.ensemble: stored probabilities of several runs averaged into a new run that
the table shows as a row, without running any model."""

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from fake_runs import fake_run
from fewtune.ensemble import main
from fewtune.predictions.rescore import rescore
from fewtune.predictions.store import Predictions, path_of, read_run
from fewtune.report.runs import collect_runs
from fewtune.report.summary import summarize
from fewtune.table import make_table
from prediction_runs import finished_run

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_ensemble_of_three_methods_averages_their_probabilities(
    request, tmp_path_factory, tmp_path, capsys
):
    members = [
        finished_run(name, request, tmp_path_factory)
        for name in ("prompt", "finetune", "prompt-lora")
    ]
    assert (
        main([*map(str, members), "--out", str(tmp_path / "ens"), "--title", "Three methods"]) == 0
    )
    folder = tmp_path / "ens" / "ensemble-seed13"
    assert f"{folder}: 3 runs, test acc" in capsys.readouterr().out
    for split in ("dev", "test"):
        mean = np.mean([read_run(m, split).probs() for m in members], axis=0)
        ours = read_run(folder, split)
        assert (
            np.allclose(ours.probs(), mean, atol=1e-7)
            and (ours.frame["pred"] == mean.argmax(1)).all()
        )
    saved = json.loads((folder / "metrics.json").read_text())
    assert (
        saved["test"] == rescore(read_run(folder))
        and saved["best_dev"] == rescore(read_run(folder, "dev"))["acc"]
    )
    assert saved["ensemble"]["members"] == [str(m) for m in members]
    # the table shows the ensemble as a row of its own, beside its members
    table = summarize(collect_runs([*members, tmp_path / "ens"]))
    (row,) = [r for r in table.rows if r.method == "ensemble"]
    assert row.title == "Three methods" and row.cells["sst2"].values == [saved["test"]["acc"]]
    make_table([*members, tmp_path / "ens"], tmp_path / "table", resamples=200)
    tested = (tmp_path / "table" / "significance.csv").read_text()
    models = "+".join(
        sorted({OmegaConf.load(m / ".hydra" / "config.yaml").model.name for m in members})
    )
    assert f",ensemble,{models}," in tested  # paired with its members


def meta() -> dict:
    return {"task": "sst2", "split": "test", "split_file": "test.tsv", "metric": "acc", "regression": False,
            "labels": ["0", "1"], "label_words": {"0": "terrible", "1": "great"}, "score_range": None}  # fmt: skip


def fake_member(root, method, seed, probs, gold=(0, 1, 1), dev_file=None):
    predictions = Predictions.build(meta(), np.arange(len(gold)), list(gold), probs=np.array(probs))
    run = fake_run(root, "sst2", method, seed, rescore(predictions)["acc"])
    predictions.write(path_of(run, "test"))
    if dev_file:  # each seed's own dev split, and the test set every seed's folder shares
        dev = Predictions.build(
            {**meta(), "split": "dev", "split_file": dev_file}, [0, 1], [0, 1], probs=np.eye(2)
        )
        dev.write(path_of(run, "dev"))
        metrics = json.loads((run / "metrics.json").read_text())
        data = {
            "dev": {"file": dev_file, "md5": dev_file},
            "test": {"file": f"{seed}/test.tsv", "md5": "same"},
        }
        (run / "metrics.json").write_text(json.dumps({**metrics, "provenance": {"data": data}}))
    return run


def test_seeds_of_one_method_make_one_ensemble_shown_as_one_number(tmp_path):
    seeds = {13: [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]], 21: [[0.2, 0.8], [0.3, 0.7], [0.4, 0.6]],
             42: [[0.8, 0.2], [0.8, 0.2], [0.1, 0.9]]}  # fmt: skip
    for seed, probs in seeds.items():
        fake_member(tmp_path / "runs", "prompt", seed, probs)
    main(
        [
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "ens"),
            "--by",
            "none",
            "--name",
            "prompt-seeds",
        ]
    )
    ours = read_run(tmp_path / "ens" / "prompt-seeds")
    assert np.allclose(ours.probs(), [[19 / 30, 11 / 30], [17 / 30, 13 / 30], [7 / 30, 23 / 30]])
    assert ours.frame["pred"].tolist() == [0, 0, 1] and rescore(ours)["acc"] == pytest.approx(2 / 3)
    table = summarize(collect_runs([tmp_path / "runs", tmp_path / "ens"]))
    (row,) = [r for r in table.rows if r.method == "prompt-seeds"]
    assert (
        row.title == "Ensemble of 3 runs"
        and "seeds]" not in table.text_rows()[table.rows.index(row)][3]
    )


def one_line_error(argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert str(exit_.value).startswith("error: ") and "\n" not in str(exit_.value)
    return str(exit_.value)


def test_what_cannot_be_averaged_is_refused_in_one_line(tmp_path):
    fake_member(tmp_path / "one", "prompt", 13, [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    assert "needs at least 2 runs, and seed 13 has 1" in one_line_error(
        [str(tmp_path / "one"), "--out", str(tmp_path / "o")]
    )
    fake_member(tmp_path / "other", "finetune", 13, [[0.9, 0.1], [0.6, 0.4]], gold=(0, 1))
    message = one_line_error(
        [str(tmp_path / "one"), str(tmp_path / "other"), "--out", str(tmp_path / "o")]
    )
    assert "cannot average sst2 test predictions" in message and "over other examples" in message
    (tmp_path / "empty").mkdir()
    assert "no finished run with predictions/test.parquet" in one_line_error(
        [str(tmp_path / "empty"), "--out", str(tmp_path / "o")]
    )


def test_seeds_share_the_test_set_but_not_their_dev_sets(tmp_path):
    for seed in (13, 21):
        fake_member(
            tmp_path / "runs",
            "prompt",
            seed,
            [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]],
            dev_file=f"16-{seed}/dev.tsv",
        )
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "ens"), "--by", "none"])
    folder = tmp_path / "ens" / "ensemble"
    assert json.loads((folder / "metrics.json").read_text())["best_dev"] is None
    assert not path_of(folder, "dev").exists() and rescore(read_run(folder))["acc"] == 1.0
    # by seed, each ensemble's members share their seed's dev set
    for seed in (13, 21):
        fake_member(
            tmp_path / "runs",
            "finetune",
            seed,
            [[0.6, 0.4], [0.4, 0.6], [0.6, 0.4]],
            dev_file=f"16-{seed}/dev.tsv",
        )
    main(
        [
            str(tmp_path / "runs"),
            "--out",
            str(tmp_path / "by-seed"),
            "--by",
            "seed",
            "--name",
            "mix",
        ]
    )
    assert (
        read_run(tmp_path / "by-seed" / "mix-seed13", "dev").meta["split_file"] == "16-13/dev.tsv"
    )
