"""The K-shot sampler: LM-BFF's released splits byte for byte, 10x dev, sizes, hub datasets."""

import csv
import hashlib
from pathlib import Path

import pytest

from fewtune.data.tasks import TaskSpec
from fewtune.sample import default_source, main, sample_task, task_config

SOURCE = default_source()
DATA = SOURCE.parent
needs_data = pytest.mark.skipif(
    not (SOURCE / "SST-2").is_dir(), reason=f"no LM-BFF original data in {SOURCE}"
)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _labels(path: Path, tsv: bool) -> list[str]:
    """Each row's label: SST-2's TSV (last column, header) or a CSV task (first column)."""
    with open(path, encoding="utf-8", newline="") as f:
        if tsv:
            return [line.rstrip("\n").split("\t")[-1] for line in f.readlines()[1:]]
        return [row[0] for row in csv.reader(f)]


@needs_data
def test_lmbff_splits_are_byte_identical(tmp_path):
    for task in ("sst2", "sst5", "trec"):
        sample_task(task_config(task), tmp_path, [16], [13, 21, 42, 87, 100], SOURCE)
    expected = [
        line.split("  ", 1)
        for line in _lines(DATA / "checksums" / "lm-bff-k-shot.md5")
        if line.split("  ", 1)[1].split("/")[0] in ("SST-2", "sst-5", "trec")
    ]
    assert len(expected) == 45
    different = [
        name
        for md5, name in expected
        if hashlib.md5((tmp_path / "k-shot" / name).read_bytes()).hexdigest() != md5
    ]
    assert different == []


@needs_data
def test_10x_mode_gives_ten_times_k_dev_examples_per_label(tmp_path):
    main(
        [
            "sst2",
            "trec",
            "--k",
            "4",
            "--seeds",
            "13",
            "--mode",
            "k-shot-10x",
            "--out",
            str(tmp_path),
        ]
    )
    folder = tmp_path / "k-shot" / "SST-2" / "4-13"
    train, dev = _labels(folder / "train.tsv", tsv=True), _labels(folder / "dev.tsv", tsv=True)
    assert sorted(train) == ["0"] * 4 + ["1"] * 4
    assert sorted(dev) == ["0"] * 40 + ["1"] * 40
    assert not set(_lines(folder / "train.tsv")[1:]) & set(_lines(folder / "dev.tsv")[1:])
    trec = _labels(tmp_path / "k-shot" / "trec" / "4-13" / "dev.csv", tsv=False)
    assert {label: trec.count(label) for label in set(trec)} == {str(i): 40 for i in range(6)}
    # The test set is the task's whole one, as in k-shot mode.
    assert (folder / "test.tsv").read_bytes() == (SOURCE / "SST-2" / "dev.tsv").read_bytes()


@needs_data
def test_10x_mode_says_where_a_label_has_too_few_for_its_dev(tmp_path, capsys):
    main(["trec", "--k", "16", "--seeds", "13", "--mode", "k-shot-10x", "--out", str(tmp_path)])
    assert "label '2' has 86 examples, so its dev gets 70 instead of 160" in capsys.readouterr().out
    dev = _labels(tmp_path / "k-shot" / "trec" / "16-13" / "dev.csv", tsv=False)
    assert dev.count("2") == 70 and dev.count("0") == 160


@needs_data
def test_a_k_larger_than_the_pool_is_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["trec", "--k", "8", "64", "--out", str(tmp_path / "out")])
    assert str(exit_info.value) == (
        "error: task 'trec': K=64 needs 128 examples per label (K train + K dev) but label '2' has 86 "
        f"in {SOURCE / 'trec' / 'train.csv'}; the largest K this pool allows is 43"
    )
    assert not (tmp_path / "out").exists()


@needs_data
def test_other_k_read_back_as_k_shot_splits(tmp_path):
    sample_task(task_config("sst2"), tmp_path, [4, 8], [21], SOURCE)
    spec = TaskSpec.from_config(task_config("sst2"))
    for k in (4, 8):
        folder = spec.split_dir(tmp_path, k, 21)
        for split in ("train", "dev"):
            labels = [ex.label for ex in spec.read_split(folder, split)]
            assert sorted(labels) == ["0"] * k + ["1"] * k


@needs_data
def test_sentence_file_pools_leave_out_the_test_set(tmp_path):
    sample_task(task_config("mr"), tmp_path, [8], [13], SOURCE)
    folder = tmp_path / "k-shot" / "mr" / "8-13"
    test = set(_lines(folder / "test.csv"))
    assert (folder / "test.csv").read_bytes() == (
        DATA / "k-shot" / "mr" / "16-13" / "test.csv"
    ).read_bytes()
    rows = _lines(folder / "train.csv") + _lines(folder / "dev.csv")
    assert len(rows) == 32 and not set(rows) & test
    assert sorted(_labels(folder / "train.csv", tsv=False)) == ["0"] * 8 + ["1"] * 8


def _fake_hub(monkeypatch, splits: dict[str, dict]):
    """datasets.load_dataset answering with in-memory splits (no hub here)."""
    import datasets

    calls = []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name))
        return datasets.DatasetDict({s: datasets.Dataset.from_dict(d) for s, d in splits.items()})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_a_hub_dataset_gives_splits_in_the_task_format(tmp_path, monkeypatch):
    texts = [f"review number {i}\twith a tab" for i in range(20)]
    calls = _fake_hub(
        monkeypatch,
        {
            "train": {"text": texts, "label": [i % 2 for i in range(20)]},
            "validation": {"text": ["a test review", "another one"], "label": [0, 1]},
        },
    )
    cfg = {**task_config("sst2"), "original": None}
    cfg["hub"] = {
        "path": "org/reviews",
        "name": "plain",
        "train": "train",
        "test": "validation",
        "columns": {"sentence": "text"},
    }
    sample_task(cfg, tmp_path, [3], [13, 21], Path("/nonexistent"))
    assert calls == [("org/reviews", "plain")]
    spec = TaskSpec.from_config(cfg)
    folder = spec.split_dir(tmp_path, 3, 13)
    assert _lines(folder / "train.tsv")[0] == "sentence\tlabel"
    train = spec.read_split(folder, "train")
    assert sorted(ex.label for ex in train) == ["0"] * 3 + ["1"] * 3
    assert all(
        ex.fields["sentence"].startswith("review number ") and "\t" not in ex.fields["sentence"]
        for ex in train
    )
    assert [ex.fields["sentence"] for ex in spec.read_split(folder, "test")] == [
        "a test review",
        "another one",
    ]
    assert (folder / "train.tsv").read_bytes() != (
        tmp_path / "k-shot" / "SST-2" / "3-21" / "train.tsv"
    ).read_bytes()


def test_a_hub_dataset_fills_a_headerless_task_and_maps_labels(tmp_path, monkeypatch):
    _fake_hub(
        monkeypatch,
        {
            "train": {
                "sentence": [f"sentence {i} ." for i in range(12)],
                "label": ["bad", "good"] * 6,
            },
            "validation": {"sentence": ["a test sentence ."], "label": ["good"]},
        },
    )
    cfg = task_config("cola")  # TSV without a header: label in column 1, sentence in column 3
    cfg["hub"] = {**cfg["hub"], "labels": {"bad": "0", "good": "1"}}
    sample_task(cfg, tmp_path, [2], [42], Path("/nonexistent"))
    spec = TaskSpec.from_config(cfg)
    folder = spec.split_dir(tmp_path, 2, 42)
    assert _lines(folder / "test.tsv") == ["\t1\t\ta test sentence ."]
    assert sorted(ex.label for ex in spec.read_split(folder, "dev")) == ["0", "0", "1", "1"]


def test_a_hub_dataset_without_the_hub_is_one_line(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SystemExit) as exit_info:
        main(["cola", "--out", str(tmp_path)])
    assert str(exit_info.value) == (
        "error: task 'cola': cannot load hub dataset 'nyu-mll/glue': Couldn't reach 'nyu-mll/glue' on the Hub"
    )
