"""Reading task files (TSV with and without header, quoted CSV, byte-order marks) and their errors."""

import pytest
from omegaconf import OmegaConf

from conftest import SHARED_DATA, load_task
from fewtune.config import CONF_DIR
from fewtune.data.tasks import TaskSpec, check_k_shot, read_examples
from fewtune.errors import FewtuneError

task = load_task


def test_tsv_with_header(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('sentence\tlabel\nit \'s "great" , really\t1\nbad\t0\n')
    examples = read_examples(task("sst2"), path)
    assert [(e.fields["sentence"], e.label) for e in examples] == [
        ('it \'s "great" , really', "1"),
        ("bad", "0"),
    ]


def test_csv_without_header_keeps_quoted_commas(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('0,"slow , dull , long"\n1,fine\n')
    examples = read_examples(task("mr"), path)
    assert [(e.fields["sentence"], e.label) for e in examples] == [
        ("slow , dull , long", "0"),
        ("fine", "1"),
    ]


def test_cola_has_no_header_and_four_columns(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("gj04\t1\t\tThe sailors rode the breeze.\ngj04\t0\t*\tThe more he reads the.\n")
    examples = read_examples(task("cola"), path)
    assert [(e.fields["sentence"], e.label) for e in examples] == [
        ("The sailors rode the breeze.", "1"),
        ("The more he reads the.", "0"),
    ]


def test_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes("\ufeffsentence\tlabel\nfine\t1\n".encode("utf-8"))
    assert read_examples(task("sst2"), path)[0].fields["sentence"] == "fine"


def test_label_the_task_does_not_declare(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\nfine\t1\nodd\t7\n")
    with pytest.raises(
        FewtuneError,
        match=r"train.tsv line 3: label '7' is not one of task 'sst2' labels \['0', '1'\]",
    ):
        read_examples(task("sst2"), path)


def test_missing_data_folder_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(
        FewtuneError,
        match=r"data folder .*nowhere does not exist; point to the LM-BFF data with FEWTUNE_DATA_DIR",
    ):
        task("sst2").split_dir(tmp_path / "nowhere", 16, 42)


def test_missing_k_shot_split_lists_what_exists(data_dir):
    with pytest.raises(FewtuneError, match=r"no split for K=64, seed=13 .*available: 4-13"):
        task("sst2").split_dir(data_dir, 64, 13)


def test_k_larger_than_the_examples(data_dir):
    spec = task("sst2")
    train = spec.read_split(spec.split_dir(data_dir, 4, 13), "train")
    check_k_shot(spec, train, 4, "train")
    with pytest.raises(
        FewtuneError,
        match=r"K=5 examples per class asked but the train split has only \{'0': 4, '1': 4\}",
    ):
        check_k_shot(spec, train, 5, "train")


def test_verbalizer_must_cover_the_labels():
    cfg = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / "sst2.yaml"))
    cfg["verbalizer"] = {"0": "terrible"}
    with pytest.raises(FewtuneError, match="verbalizer's labels"):
        TaskSpec.from_config(cfg)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize(
    "name, sizes",
    [
        ("sst2", (32, 32, 872)),
        ("sst5", (80, 80, 2210)),
        ("mr", (32, 32, 2000)),
        ("cr", (32, 32, 2000)),
        ("mpqa", (32, 32, 2000)),
        ("subj", (32, 32, 2000)),
        ("trec", (96, 96, 500)),
        ("cola", (32, 32, 1043)),
    ],
)
def test_every_single_sentence_task_reads_the_real_data(name, sizes):
    spec = task(name)
    folder = spec.split_dir(SHARED_DATA, 16, 42)
    splits = [spec.read_split(folder, split) for split in ("train", "dev", "test")]
    assert tuple(map(len, splits)) == sizes
    for split in splits[:2]:
        check_k_shot(spec, split, 16, "train")
    assert {ex.label for ex in splits[2]} == set(spec.labels)
