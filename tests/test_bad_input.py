"""Every bad input a user is likely to give (issue 28) is one line that names the file, row or key
at fault and the fix; it comes before any weights load, and nothing is left that a later run or
the table would take for a result (no metrics.json).

Most cases call the code in-process (fast); the command-line behaviour (exit code, a single
line, no traceback) is checked in subprocesses for a few of them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import compose_cfg, tiny_overrides, write_sst2_split
from fewtune.errors import FewtuneError
from fewtune.run.build import build
from fewtune.train import train

SPLIT = Path("k-shot") / "SST-2" / "4-13"


@pytest.fixture
def no_weights(monkeypatch):
    """Loading a backbone's weights fails the test: the check must come first."""
    from fewtune.models import backbones

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded before the bad input was found")

    monkeypatch.setattr(backbones, "load_model", refuse)


def refused(tiny_masked, data_dir, tmp_path, *overrides, method="prompt", call=build) -> str:
    """The one-line error of building (or running) the run; no metrics.json is left."""
    out = tmp_path / "run"
    with pytest.raises(FewtuneError) as err:
        call(compose_cfg(tiny_overrides(tiny_masked, data_dir, method, *overrides), out))
    message = str(err.value)
    assert "\n" not in message
    assert not (out / "metrics.json").exists()
    return message


def edit(data_dir: Path, name: str, text: str | bytes, append: bool = True) -> Path:
    path = data_dir / SPLIT / name
    if isinstance(text, bytes):
        path.write_bytes(path.read_bytes() + text if append else text)
    else:
        path.write_text(path.read_text() + text if append else text)
    return path


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "optimizer.lr=-1e-5",
            "optimizer.lr=-1e-05: a learning rate must be a number above 0; e.g. optimizer.lr=1e-5",
        ),
        (
            "optimizer.lr=0",
            "optimizer.lr=0: a learning rate must be a number above 0; e.g. optimizer.lr=1e-5",
        ),
        ("peft=lora", None),  # peft.lr=5e-4 is fine
        ("batch_size=0", "batch_size=0: give a whole number of at least 1"),
        ("eval_batch_size=-2", "eval_batch_size=-2: give a whole number of at least 1"),
        (
            "trainer.max_steps=0",
            "trainer.max_steps=0: method 'prompt' trains, so give at least 1 step (-1: until trainer.max_epochs), "
            "or use method=zeroshot to evaluate without training",
        ),
        (
            "trainer.val_check_interval=0",
            "trainer.val_check_interval=0: give the steps between dev evaluations (e.g. 100), or a share of an "
            "epoch in (0, 1]",
        ),
    ],
)
def test_bad_settings_are_refused_before_the_weights_load(
    override, line, tiny_masked, data_dir, tmp_path, no_weights
):
    if line is None:
        with pytest.raises(AssertionError, match="weights were loaded"):  # the checks pass
            build(compose_cfg(tiny_overrides(tiny_masked, data_dir, "prompt", override), tmp_path))
        return
    assert refused(tiny_masked, data_dir, tmp_path, override) == line


@pytest.mark.parametrize(
    ("overrides", "found", "line"),
    [
        (
            ("trainer=gpu", "trainer.accelerator=gpu"),
            0,
            "trainer.accelerator=gpu, but torch {version} sees no CUDA GPU on this machine: add "
            "trainer.accelerator=cpu (or use trainer=cpu), or on a GPU machine install torch's CUDA build "
            "(make install TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cu128)",
        ),
        (
            ("trainer=ddp", "trainer.accelerator=gpu", "trainer.devices=4"),
            2,
            "trainer.devices=4, but torch sees 2 CUDA GPU(s) on this machine: use trainer.devices=2 "
            "or fewer (-1: all of them)",
        ),
    ],
)
def test_a_gpu_run_without_its_gpus_is_refused_before_the_weights_load(
    overrides, found, line, tiny_masked, data_dir, tmp_path, no_weights, monkeypatch
):
    import torch

    from fewtune.run import hardware

    monkeypatch.setattr(hardware, "visible_gpus", lambda: found)
    message = refused(tiny_masked, data_dir, tmp_path, *overrides)
    assert message == line.format(version=torch.__version__)


def test_max_steps_0_with_a_training_method_writes_no_metrics(
    tiny_masked, data_dir, tmp_path, no_weights
):
    """It used to exit 0 with a metrics.json of 0 steps that looked complete."""
    message = refused(tiny_masked, data_dir, tmp_path, "trainer.max_steps=0", call=train)
    assert message.startswith("trainer.max_steps=0: method 'prompt' trains")
    # Zero-shot trains nothing: max_steps does not matter there.
    with pytest.raises(AssertionError, match="weights were loaded"):
        build(
            compose_cfg(
                tiny_overrides(tiny_masked, data_dir, "zeroshot", "trainer.max_steps=0"), tmp_path
            )
        )


# --- the task config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "line"),
    [
        (
            "task.labels=[positive]",
            "task 'sst2': labels ['positive'] has one label; a classifier needs every label the data has (at least two)",
        ),
        (
            "~task.metric",
            "task 'sst2': no ['metric'] in its config; see docs/custom-tasks.md for a complete task",
        ),
        (
            "~task.template.masked",
            "task 'sst2' has no template for a masked LM; add template.masked to its config (it has ['causal'])",
        ),
        ("task.labels=[0,0]", "task 'sst2': labels ['0', '0'] list ['0'] more than once"),
        (
            "task.max_length=0",
            "task 'sst2': max_length=0: give a whole number of tokens, at least 8 (e.g. 128)",
        ),
        (
            "task.verbalizer.1='🙂'",
            "label word '🙂' is not in this model's vocabulary (it becomes [UNK]); choose a word the model knows",
        ),
    ],
)
def test_bad_task_configs_are_one_line_before_the_weights(
    override, line, tiny_masked, data_dir, tmp_path, no_weights
):
    assert refused(tiny_masked, data_dir, tmp_path, override) == line


def test_a_yaml_boolean_label_is_named(tmp_path):
    from omegaconf import OmegaConf

    from conftest import task_config
    from fewtune.data.tasks import TaskSpec

    cfg = {
        **task_config("sst2"),
        **OmegaConf.to_container(OmegaConf.create("labels: [true, false]")),
    }
    with pytest.raises(
        FewtuneError, match=r"label True is a YAML boolean; quote it as the data writes it"
    ):
        TaskSpec.from_config(cfg)


# --- the data --------------------------------------------------------------------------------


def test_a_label_the_task_lacks_names_file_and_line(tiny_masked, data_dir, tmp_path, no_weights):
    path = edit(data_dir, "train.tsv", "a neutral film\t2\n")
    assert refused(tiny_masked, data_dir, tmp_path) == (
        f"{path} line 10: label '2' is not one of task 'sst2' labels ['0', '1']; fix the data or the task config"
    )


def test_bytes_that_are_not_utf8_name_file_and_line(tiny_masked, data_dir, tmp_path, no_weights):
    path = edit(
        data_dir,
        "dev.tsv",
        "sentence\tlabel\na film\t0\ncaf\xe9 film\t1\n".encode("latin-1"),
        append=False,
    )
    assert refused(tiny_masked, data_dir, tmp_path) == (
        f"{path} line 3: bytes b'\\xe9' are not UTF-8; save the file as UTF-8 "
        "(e.g. iconv -f latin1 -t utf-8 dev.tsv > fixed.tsv)"
    )


def test_a_row_wider_than_the_header(tiny_masked, data_dir, tmp_path, no_weights):
    path = edit(data_dir, "test.tsv", "a great\tfilm\t1\n")
    assert refused(tiny_masked, data_dir, tmp_path) == (
        f"{path} line 18: 3 columns where line 1 has 2 (a tab inside the text? remove it)"
    )


def test_an_empty_split(tiny_masked, data_dir, tmp_path, no_weights):
    path = edit(data_dir, "test.tsv", "sentence\tlabel\n", append=False)
    assert refused(tiny_masked, data_dir, tmp_path) == (
        f"{path}: no examples in this file (only its header); task 'sst2' needs labelled rows in each split"
    )


def test_k_larger_than_a_class(tiny_masked, data_dir, tmp_path, no_weights):
    import shutil

    shutil.copytree(data_dir / SPLIT, data_dir / SPLIT.parent / "5-13")
    assert refused(tiny_masked, data_dir, tmp_path, "k=5") == (
        "task 'sst2': K=5 examples per class asked but the train split has only {'0': 4, '1': 4} "
        "(label: count); use a smaller k or build a bigger split"
    )


def test_a_text_field_empty_in_some_rows_is_a_warning_in_all_an_error(
    tiny_masked, data_dir, tmp_path, no_weights, caplog
):
    path = edit(data_dir, "dev.tsv", "\t1\n \t0\n")
    with (
        caplog.at_level(logging.WARNING, logger="fewtune"),
        pytest.raises(AssertionError, match="weights"),
    ):
        build(compose_cfg(tiny_overrides(tiny_masked, data_dir, "prompt"), tmp_path))
    assert (
        f"{path}: field 'sentence' is empty in 2 of 10 rows (lines 10, 11): the template gets no text there; "
        "fill or remove them"
    ) in caplog.messages
    edit(data_dir, "dev.tsv", "sentence\tlabel\n" + "\t0\n\t1\n" * 4, append=False)
    assert refused(tiny_masked, data_dir, tmp_path) == (
        f"{path}: field 'sentence' is empty in every row; is columns.sentence of task 'sst2' the right column?"
    )


def test_test_examples_seen_in_training_are_a_warning(tiny_masked, tmp_path, no_weights, caplog):
    data = write_sst2_split(tmp_path / "data")
    test = data / SPLIT / "test.tsv"
    test.write_text("sentence\tlabel\nan unseen film\t1\ntruly great fun\t1\n")
    with (
        caplog.at_level(logging.WARNING, logger="fewtune"),
        pytest.raises(AssertionError, match="weights"),
    ):
        build(compose_cfg(tiny_overrides(tiny_masked, data, "prompt"), tmp_path / "run"))
    assert (
        f"1 of the 2 test examples in {test} are also training examples (the same text): the test score counts "
        "them as unseen; remove them from the test set unless that is intended"
    ) in caplog.messages


def write_mr_split(root: Path, rows: dict[str, str]) -> Path:
    """A CSV task (MR: no header, label then text) in LM-BFF's layout."""
    folder = root / "k-shot" / "mr" / "4-13"
    folder.mkdir(parents=True)
    plain = "".join(f"{i % 2},a film number {i}\n" for i in range(8))
    for split in ("train", "dev", "test"):
        (folder / f"{split}.csv").write_text(rows.get(split, plain))
    return root


@pytest.mark.parametrize("split", ["test", "train"])
def test_an_unclosed_quote_names_its_row(split, tiny_masked, tmp_path, no_weights):
    """test.csv used to lose a row silently, and train.csv blamed K."""
    broken = '0,a film\n1,"a great film\n0,another film\n1,a "good" one\n' + "".join(
        f"{i % 2},film {i}\n" for i in range(8)
    )
    data = write_mr_split(tmp_path / "data", {split: broken})
    path = data / "k-shot" / "mr" / "4-13" / f"{split}.csv"
    assert refused(tiny_masked, data, tmp_path, "task=mr") == (
        f"{path} line 2: a quote in this row is not closed where it should be (the CSV reader stopped at line 4: "
        "',' expected after '\"'); close the quote, or double a quote inside quoted text (\"\")"
    )
    path.write_text("".join(f"{i % 2},film {i}\n" for i in range(8)) + '1,"the last film\n')
    assert refused(tiny_masked, data, tmp_path, "task=mr") == (
        f"{path} line 9: a quote opened in this row is never closed (the rest of the file would be read as one "
        'cell); close it, or double a quote inside quoted text ("")'
    )


def test_a_csv_row_with_more_columns_than_the_others(tiny_masked, tmp_path, no_weights):
    data = write_mr_split(tmp_path / "data", {"train": "0,a film\n1,a great, great film\n"})
    path = data / "k-shot" / "mr" / "4-13" / "train.csv"
    assert refused(tiny_masked, data, tmp_path, "task=mr") == (
        f"{path} line 2: 3 columns where line 1 has 2 (an unquoted comma in the text? quote the text)"
    )


# --- the sampler -----------------------------------------------------------------------------


def sst5_source(root: Path, train: str) -> Path:
    folder = root / "sst-5"
    folder.mkdir(parents=True)
    (folder / "train.csv").write_text(train)
    (folder / "test.csv").write_text("1,a test sentence\n")
    return root


def test_the_sampler_names_the_broken_row_not_k(tmp_path):
    from fewtune.sample import main

    rows = [f"{i % 5},sentence {i}\n" for i in range(40)]
    source = sst5_source(
        tmp_path / "source", "".join(rows[:3]) + '3,"an unclosed quote\n' + "".join(rows[3:])
    )
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "sst5",
                "--k",
                "2",
                "--seeds",
                "13",
                "--source",
                str(source),
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert str(exit_info.value).startswith(
        f"error: {source / 'sst-5' / 'train.csv'} line 4: a quote opened in this row is never closed"
    )
    assert not (tmp_path / "out").exists()


def test_the_sampler_on_a_users_csv(tmp_path):
    """A user's CSV with a header: a wrong column name, bytes that are not UTF-8, an empty file."""
    from omegaconf import OmegaConf

    from fewtune.sample import sample_task
    from test_custom_tasks import REVIEWS_YAML

    cfg = OmegaConf.to_container(OmegaConf.create(REVIEWS_YAML))
    data = tmp_path / "data"
    data.mkdir()
    (data / "reviews_test.csv").write_text("review,sentiment\nfine,positive\n")
    train = data / "reviews.csv"

    def error(text: bytes) -> str:
        train.write_bytes(text)
        with pytest.raises(FewtuneError) as err:
            sample_task(cfg, tmp_path / "out", [1], [13], data)
        return str(err.value)

    assert error(b"text,sentiment\na,positive\n").startswith(
        f"dataset {train}, {data / 'reviews_test.csv'} has no column(s) ['review'] (it has ['text', 'sentiment'])"
    )
    assert error(b"review,sentiment\na,positive\nb\xe9,negative\n") == (
        f"{train} line 3: bytes b'\\xe9' are not UTF-8; save the file as UTF-8 "
        "(e.g. iconv -f latin1 -t utf-8 reviews.csv > fixed.csv)"
    )
    assert (
        error(b"review,sentiment\n")
        == f"{train}: no examples in this file (only its header); give it labelled rows"
    )
    assert error(b"review,sentiment\na,positive\nb,neutral\n") == (
        f"{train} row 2: label 'neutral' is not one of task 'reviews' labels "
        "['negative', 'positive']; check the task's 'labels', 'columns' and 'dataset' entries"
    )
    assert not (tmp_path / "out").exists()


# --- results on disk -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"), [('{"test": {"acc": 0.5', "not valid JSON"), ("[0.5]", "holds a JSON list")]
)
def test_a_broken_metrics_json_met_by_a_rerun(
    text, why, tiny_masked, data_dir, tmp_path, no_weights
):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text(text)
    with pytest.raises(FewtuneError) as err:
        train(compose_cfg(tiny_overrides(tiny_masked, data_dir, "prompt"), out))
    assert str(err.value).startswith(
        f"{out / 'metrics.json'} {'is ' if 'valid' in why else ''}{why}"
    )
    assert str(err.value).endswith(
        f"it is no result: delete it to run this job again (rm {out / 'metrics.json'})"
    )


def test_a_broken_metrics_json_met_by_the_table(tmp_path):
    from fake_runs import fake_run
    from fewtune.table import main

    fake_run(tmp_path / "runs", "sst2", "prompt", 13, 0.8)
    broken = fake_run(tmp_path / "runs", "sst2", "prompt", 21, 0.8)
    (broken / "metrics.json").write_text('{"test": {"acc"')
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "runs"), "--out", str(tmp_path / "table")])
    assert str(exit_info.value) == (
        f"error: {broken / 'metrics.json'} is not valid JSON (Expecting ':' delimiter); truncated? it is no result: "
        f"rerun that job (its command with hydra.run.dir={broken}) or delete {broken}"
    )
    (broken / "metrics.json").write_text('{"best_dev": 0.5}')
    with pytest.raises(SystemExit, match=r"metrics.json has no test acc: it is no result"):
        main([str(tmp_path / "runs"), "--out", str(tmp_path / "table")])


def test_temporary_files_of_a_killed_write_are_removed(tiny_masked, data_dir, tmp_path):
    """A SIGKILL during a checkpoint write leaves .best.ckpt.<random>; the next run removes it."""
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    leftovers = [out / "checkpoints" / ".best.ckpt.k2j_x9ab", out / ".metrics.json.0f3a8qzx"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    keep = out / ".hydra"
    keep.mkdir()
    train(compose_cfg(tiny_overrides(tiny_masked, data_dir, "prompt", "trainer.max_steps=1"), out))
    assert not any(path.exists() for path in leftovers)
    assert (out / "metrics.json").is_file() and keep.is_dir()


# --- the command line ------------------------------------------------------------------------


def cli(*args, cwd=None, **popen):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "fewtune.train", *args]
    if popen:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
        )
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def one_line(result) -> str:
    """The error line, once it is known to be the only trace of the failure."""
    assert result.returncode not in (0, None)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    return errors[0]


def test_cli_max_steps_0_is_one_line_and_no_result(tiny_masked, data_dir, tmp_path):
    """It used to exit 0 with a metrics.json of 0 steps; the other settings take the same path."""
    out = tmp_path / "run"
    result = cli(
        *tiny_overrides(tiny_masked, data_dir, "prompt", "trainer.max_steps=0"),
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 1
    assert one_line(result).startswith("error: trainer.max_steps=0: method 'prompt' trains")
    assert not (out / "metrics.json").exists()
    assert json.loads((out / "failed.json").read_text())["error"] == one_line(result).removeprefix(
        "error: "
    )


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_cli_output_folder_under_a_file(key, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    multirun = ["-m"] if key == "hydra.sweep.dir" else []
    result = cli(*multirun, f"{key}={blocker}/run", "logger=none")
    assert one_line(result) == (
        f"error: {key}={blocker}/run: {blocker} is a file, not a folder; give {key}=<a folder you can write to>"
    )
    assert result.returncode == 1


def test_an_output_folder_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    """As root (CI containers) every folder is writable: a read-only disk is simulated."""
    from fewtune.jobs import folders

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    assert folders.folder_problem(tmp_path / "a" / "run") is None
    monkeypatch.setattr(folders.tempfile, "TemporaryFile", read_only)
    assert (
        folders.folder_problem(tmp_path / "a" / "run")
        == f"cannot write in {tmp_path} (Read-only file system)"
    )
    assert not (tmp_path / "a").exists()  # the check makes nothing


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder")
def test_cli_output_folder_that_cannot_be_written(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = cli(f"hydra.run.dir={locked}/run", "logger=none")
    assert re.fullmatch(
        rf"error: hydra.run.dir={locked}/run: cannot write in {locked} \(.*\); give .*",
        one_line(result),
    )


def test_cli_sigterm_says_the_job_was_stopped_and_how_to_resume(tiny_masked, data_dir, tmp_path):
    out = tmp_path / "run"
    args = tiny_overrides(
        tiny_masked, data_dir, "prompt", "trainer.max_steps=100000", "trainer.val_check_interval=2"
    )
    proc = cli(*args, f"hydra.run.dir={out}", popen=True)
    deadline = time.monotonic() + 240
    while (
        not (out / "checkpoints" / "last.ckpt").is_file()
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    message = json.loads((out / "failed.json").read_text())["error"]
    assert message.startswith("stopped by SIGTERM (scancel, a preemption or the time limit); ")
    assert "to continue from checkpoints/last.ckpt (step " in message
    assert message.endswith(
        f"run the same command again (with hydra.run.dir={out})"
    )  # a single run's folder
    assert one_line(result) == f"error: {message}"
    assert result.returncode == 128 + signal.SIGTERM
    assert not (out / "metrics.json").exists()


def test_a_group_given_to_a_saved_run_is_one_line(tmp_path):
    """evaluate, predict and exits change a saved run's values; trainer=gpu would replace the
    trainer's settings by a string and fail deep in the build."""
    from fewtune.run.reload import CONFIG_FILE, run_config

    (tmp_path / CONFIG_FILE).parent.mkdir(parents=True)
    (tmp_path / CONFIG_FILE).write_text(
        "trainer:\n  _target_: pytorch_lightning.Trainer\n  accelerator: gpu\npaths:\n  output_dir: x\n"
    )
    with pytest.raises(FewtuneError) as err:
        run_config(tmp_path, ["trainer=cpu"])
    assert str(err.value) == (
        "trainer=cpu: trainer is a group of settings in the run's saved config, chosen when the run "
        "started; change one of its values instead, as trainer.<setting>=<value> (e.g. "
        "trainer.accelerator=cpu)"
    )
    assert run_config(tmp_path, ["trainer.accelerator=cpu"]).trainer.accelerator == "cpu"
    assert run_config(tmp_path, ["trainer={accelerator: cpu}"]).trainer._target_.endswith("Trainer")
