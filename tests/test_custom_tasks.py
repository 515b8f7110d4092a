"""docs/custom-tasks.md, step by step: a user's own task in a folder outside the checkout, on
their data as it comes (a CSV with a header and named columns, JSON Lines, a folder saved by
``datasets``), is sampled (K=16, two seeds), trained (method=prompt and method=finetune, a tiny
model) and tabled, and no file of the checkout changes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fewtune.config import CONF_DIR, PROJECT_ROOT
from fewtune.sample import main as sample_main
from fewtune.table import main as table_main

# The task of docs/custom-tasks.md, section 3; the JSON Lines and saved-dataset variants change
# only what section 5 changes.
REVIEWS_YAML = """\
name: reviews
format: csv
header: true
columns: {text: review, label: sentiment}
text_fields: [text]
labels: [negative, positive]
metric: acc
template:
  masked: "{text} It was {mask} ."
  causal: "{text} It was {mask}"
verbalizer: {negative: terrible, positive: great}
dataset:
  train: reviews.csv
  test: reviews_test.csv
"""
VARIANTS = {
    "reviews-jsonl": (
        "format: csv",
        "format: jsonl",
        "dataset:\n  train: reviews.csv\n  test: reviews_test.csv",
        "dataset: {train: reviews.jsonl, test: reviews_test.jsonl}",
    ),
    "reviews-saved": (
        "format: csv",
        "format: tsv",
        "dataset:\n  train: reviews.csv\n  test: reviews_test.csv",
        "dataset: {path: reviews_saved}",
    ),
}
POSITIVE = ["a great film", "wonderful acting, great story", 'truly "great" fun', "I loved it"]
NEGATIVE = ["a terrible film", "awful acting, terrible story", "truly boring", "I hated it"]
TASKS = ("reviews", *VARIANTS)


def reviews(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({"id": 2 * i, "review": f"{POSITIVE[i % 4]} (#{i})", "sentiment": "positive"})
        rows.append(
            {"id": 2 * i + 1, "review": f"{NEGATIVE[i % 4]} (#{i})", "sentiment": "negative"}
        )
    return rows


def write_user_folder(root: Path) -> tuple[Path, Path]:
    """(config folder, data folder) as a user would have them, outside the checkout."""
    import datasets

    conf, data = root / "conf", root / "data"
    (conf / "task").mkdir(parents=True)
    data.mkdir()
    (conf / "task" / "reviews.yaml").write_text(REVIEWS_YAML)
    for name, (*edits,) in VARIANTS.items():
        text = REVIEWS_YAML.replace("name: reviews", f"name: {name}")
        for old, new in zip(edits[::2], edits[1::2]):
            assert old in text
            text = text.replace(old, new)
        (conf / "task" / f"{name}.yaml").write_text(text)
    splits = {"": reviews(40), "_test": reviews(6)}
    for suffix, rows in splits.items():
        with open(data / f"reviews{suffix}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, ["id", "review", "sentiment"])
            writer.writeheader()
            writer.writerows(rows)
        (data / f"reviews{suffix}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    saved = {"train": splits[""], "test": splits["_test"]}
    datasets.DatasetDict(
        {s: datasets.Dataset.from_list(rows) for s, rows in saved.items()}
    ).save_to_disk(str(data / "reviews_saved"))
    return conf, data


def checkout_state() -> list[str]:
    """Every file of the checkout that git sees as changed, new or ignored (but Python's and
    pytest's caches, which importing and testing write)."""
    lines = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [line for line in lines if "__pycache__" not in line and ".pytest_cache" not in line]


@pytest.mark.skipif(
    not (PROJECT_ROOT / ".git").exists(), reason="needs the git checkout to compare"
)
def test_a_users_task_outside_the_checkout_samples_trains_and_tables(
    tmp_path, tiny_masked, monkeypatch, capsys
):
    before = checkout_state()
    conf, data = write_user_folder(tmp_path / "my-fewtune")
    monkeypatch.setenv("FEWTUNE_CONFIG_DIR", str(conf))
    monkeypatch.chdir(tmp_path)
    fewshot, runs = (
        tmp_path / "my-fewtune" / "fewshot",
        tmp_path / "my-fewtune" / "runs" / "reviews",
    )

    # 4. Sample: K=16 per label, two seeds
    sample_main([*TASKS, "--source", str(data), "--out", str(fewshot), "--seeds", "13", "21"])
    split = fewshot / "k-shot" / "reviews" / "16-13"
    assert split.joinpath("train.csv").read_text().splitlines()[0] == "review,sentiment"
    assert len(split.joinpath("test.csv").read_text().splitlines()) == 1 + 12
    assert (fewshot / "k-shot" / "reviews-jsonl" / "16-21" / "dev.jsonl").is_file()
    assert (
        (fewshot / "k-shot" / "reviews-saved" / "16-21" / "train.tsv")
        .read_text()
        .startswith("review\tsentiment\n")
    )

    # 4. Train: both methods, both seeds, in one multirun (a tiny model instead of the default backbone)
    command = [
        sys.executable,
        "-m",
        "fewtune.train",
        "-m",
        f"task={','.join(TASKS)}",
        "method=prompt,finetune",
        "seed=13,21",
        f"paths.data_dir={fewshot}",
        f"hydra.sweep.dir={runs}",
        "model=hf",
        f"model.path={tiny_masked}",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "trainer.enable_progress_bar=false",
        "eval_batch_size=64",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT / "src")}
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list(runs.glob("*/metrics.json"))) == 12, result.stderr[-3000:]

    # 4. The table: every task, both methods, two seeds each
    out = tmp_path / "my-fewtune" / "tables" / "reviews"
    capsys.readouterr()
    table_main([str(runs), "--out", str(out)])
    assert "12 of 12 runs complete" in capsys.readouterr().out
    table = (out / "table.csv").read_text()
    for task in TASKS:
        assert task in table
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert sorted({(r["task"], r["method"]) for r in rows if r["status"] == "completed"}) == sorted(
        (t, m) for t in TASKS for m in ("finetune", "prompt")
    )
    assert checkout_state() == before
    assert CONF_DIR == PROJECT_ROOT / "conf"


def test_a_second_clone_reads_its_own_configs(tmp_path):
    """Run inside another fewtune checkout than the installed one, its conf/ is the one read, and a
    line says so: here a task that only that clone has."""
    import shutil

    clone = tmp_path / "clone"
    shutil.copytree(CONF_DIR, clone / "conf")
    (clone / "pyproject.toml").write_text('[project]\nname = "fewtune"\n')
    task = (CONF_DIR / "task" / "sst2.yaml").read_text().replace("name: sst2", "name: clone-only")
    (clone / "conf" / "task" / "clone-only.yaml").write_text(task)
    source = tmp_path / "source" / "SST-2"
    source.mkdir(parents=True)
    rows = "".join(f"a {'great' if i % 2 else 'terrible'} film {i}\t{i % 2}\n" for i in range(8))
    for name in ("train.tsv", "dev.tsv"):
        (source / name).write_text("sentence\tlabel\n" + rows)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    env.pop("FEWTUNE_CONFIG_DIR", None)
    command = [
        sys.executable,
        "-m",
        "fewtune.sample",
        "clone-only",
        "--k",
        "2",
        "--seeds",
        "1",
        "--source",
        str(tmp_path / "source"),
        "--out",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=clone, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert f"note: using the configs of the checkout you are in ({clone / 'conf'})" in result.stderr
    assert f"installed from {PROJECT_ROOT}" in result.stderr
    assert (tmp_path / "out" / "k-shot" / "SST-2" / "2-1" / "train.tsv").is_file()
    # Outside any checkout: the installed one's configs, and no note.
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 1 and "note:" not in result.stderr
    assert result.stderr.strip() == (
        "error: no task 'clone-only' in conf/task/ or the user config folders (FEWTUNE_CONFIG_DIR, --config-dir); "
        f"tasks: {', '.join(sorted(p.stem for p in (CONF_DIR / 'task').glob('*.yaml')))}"
    )


def test_every_command_finds_a_task_in_a_user_config_folder(tmp_path, monkeypatch):
    """fewtune.sample (--config-dir or FEWTUNE_CONFIG_DIR) and the composed run config (train,
    search_words, the playground) read the same folders."""
    from fewtune.config import compose_config
    from fewtune.sample import task_config

    conf, _ = write_user_folder(tmp_path / "user")
    monkeypatch.delenv("FEWTUNE_CONFIG_DIR", raising=False)
    assert task_config("reviews", [conf])["labels"] == ["negative", "positive"]
    assert compose_config(["task=reviews"], [conf]).task.name == "reviews"
    monkeypatch.setenv("FEWTUNE_CONFIG_DIR", f"{tmp_path / 'missing'}{os.pathsep}{conf}")
    assert compose_config(["task=reviews-jsonl"]).task.format == "jsonl"
    from fewtune.scoring.playground import compose_config as playground_config

    assert playground_config("reviews", "hf").task.dataset.train == "reviews.csv"


def test_search_words_takes_config_dir(tmp_path, monkeypatch):
    from fewtune.config import use_config_dirs

    monkeypatch.setenv("FEWTUNE_CONFIG_DIR", "/elsewhere")
    assert use_config_dirs(["task=x", "--config-dir", str(tmp_path), "k=4"]) == ["task=x", "k=4"]
    assert os.environ["FEWTUNE_CONFIG_DIR"] == f"{tmp_path}{os.pathsep}/elsewhere"
    with pytest.raises(SystemExit, match="--config-dir '/nowhere' is not a folder"):
        use_config_dirs(["--config-dir=/nowhere"])


def test_dataset_entries_of_every_kind(tmp_path):
    """test_size, a ClassLabel's names, a folder of data files, a TSV whose text holds quotes."""
    import datasets
    from omegaconf import OmegaConf

    from fewtune.data.tasks import TaskSpec
    from fewtune.sample import sample_task

    base = OmegaConf.to_container(OmegaConf.create(REVIEWS_YAML))
    rows = reviews(20)
    data = tmp_path / "data"
    (data / "folder").mkdir(parents=True)

    def sampled(entry: dict, name: str) -> list:
        cfg = {**base, "name": name, "dataset": entry}
        sample_task(cfg, tmp_path / "out", [4], [13], data)
        spec = TaskSpec.from_config(cfg)
        folder = spec.split_dir(tmp_path / "out", 4, 13)
        return [spec.read_split(folder, split) for split in ("train", "dev", "test")]

    with open(data / "all.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "review", "sentiment"])
        writer.writeheader()
        writer.writerows(rows)
    train, dev, test = sampled({"train": "all.csv", "test_size": 0.25}, "held-out")
    assert len(test) == 10 and len(train) == len(dev) == 8
    assert not {ex.fields["text"] for ex in test} & {ex.fields["text"] for ex in train + dev}

    features = datasets.Features(
        {
            "review": datasets.Value("string"),
            "sentiment": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )
    as_classes = [
        {"review": r["review"], "sentiment": int(r["sentiment"] == "positive")} for r in rows
    ]
    datasets.Dataset.from_list(as_classes, features=features).save_to_disk(str(data / "single"))
    train, _, test = sampled({"path": "single", "test_size": 0.2}, "class-names")
    assert {ex.label for ex in train} == {"negative", "positive"}

    for split, part in (("train", rows), ("test", rows[:4])):
        (data / "folder" / f"{split}.tsv").write_text(
            "review\tsentiment\n"
            + "".join(f'{r["review"]} "so" "quoted"\t{r["sentiment"]}\n' for r in part)
        )
    train, _, test = sampled({"path": "folder"}, "tsv-folder")
    assert len(test) == 4 and all('"so" "quoted"' in ex.fields["text"] for ex in train)
