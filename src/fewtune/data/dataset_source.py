"""A task's full data read with Hugging Face ``datasets``: the ``dataset`` (or ``hub``) entry.

    dataset:                         # data files: CSV/TSV with a header, JSON Lines, Parquet
      train: reviews_train.csv       # relative to the sampler's --source, or absolute
      test: reviews_test.csv         # or test_size: 0.2, a held-out share of train
    dataset:
      path: my_reviews               # a folder from Dataset(Dict).save_to_disk, a folder of data
      train: train                   # files, a data file, or a hub id; train/test name splits
      test: test
    columns: {text: review}          # task field -> dataset column (default: the task's own
    labels: {0: negative}            # column names); dataset label -> task label (default: the
                                     # label's text, or its ClassLabel name)

Local files are read strictly first (fewtune/data/text_files.py), so that a broken row is one
line naming its file and line rather than a row read wrongly. Each example becomes a record
{task field: text, "label": task label}; fewtune/data/originals.py writes them as K-shot files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewtune.data.text_files import check_file
from fewtune.errors import FewtuneError

# file suffix -> (datasets builder, its options, our strict check's format)
BUILDERS = {
    ".csv": ("csv", {}, "csv"),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": 3}, "tsv"),  # 3: csv.QUOTE_NONE, as GLUE's TSVs
    ".jsonl": ("json", {}, "jsonl"),
    ".json": ("json", {}, None),
    ".parquet": ("parquet", {}, None),
}
KEYS = ("path", "name", "train", "test", "test_size", "columns", "labels", "group_threshold")
SAVED_MARKERS = ("dataset_dict.json", "state.json")  # written by save_to_disk
TEST_SPLIT_SEED = 0


@dataclass
class Records:
    train: list[dict]  # {task field: text, "label": task label}
    test: list[dict]
    where: list[str]  # each train record's place, for messages ("reviews.csv row 12")
    source: str


def load_records(task, entry: Mapping[str, Any], base: Path | None, hub: bool = False) -> Records:
    """The train and test records of a task's ``dataset`` entry (``hub``: its ``hub`` entry)."""
    key = "hub" if hub else "dataset"
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise FewtuneError(
            f"task '{task.name}': unknown key(s) {unknown} in '{key}'; the keys are {list(KEYS)}"
        )
    splits, source = _load(task, entry, base, key)
    names = _column_names(task, entry)
    files = entry.get("path") is None  # train and test are files: messages name the file
    # With data files, train and test name the files, loaded as the splits "train" and "test".
    split_name = (
        (lambda split: split)
        if entry.get("path") is None
        else (lambda split: entry.get(split, split))
    )
    train = _split(splits, split_name("train"), source, task, "train")
    if entry.get("test_size") is not None and "test" not in entry:
        size = entry["test_size"]
        if not isinstance(size, (int, float)) or isinstance(size, bool) or not 0 < size < 1:
            raise FewtuneError(
                f"task '{task.name}': {key}.test_size={size!r}: give a share between 0 and 1, e.g. 0.2"
            )
        parts = train.train_test_split(test_size=size, seed=TEST_SPLIT_SEED)
        train, test = parts["train"], parts["test"]
    else:
        test = _split(splits, split_name("test"), source, task, "test")
    label_map = {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
    places = {
        split: str(_local(base, entry[split])) if files and split in entry else f"{source} {split}"
        for split in ("train", "test")
    }
    if "test" not in entry and entry.get("test_size") is not None:  # rows shuffled: no file order
        places = {
            split: f"{source} {split} part of test_size={entry['test_size']}" for split in places
        }
    train_records, where = _records(task, train, names, label_map, source, places["train"])
    test_records, _ = _records(task, test, names, label_map, source, places["test"])
    return Records(train_records, test_records, where, source)


def _column_names(task, entry: Mapping[str, Any]) -> dict[str, str]:
    """Task field -> dataset column: the entry's ``columns``, else the task's named column, else the field."""
    own = task.splits["train"].columns
    mapped = entry.get("columns") or {}
    return {
        f: str(mapped.get(f, own[f] if isinstance(own.get(f), str) else f))
        for f in (*task.text_fields, "label")
    }


def _load(
    task, entry: Mapping[str, Any], base: Path | None, key: str
) -> tuple[Mapping[str, Any], str]:
    """({split name: Dataset}, a name for messages)."""
    import datasets

    datasets.disable_progress_bars()  # the sampler prints one line per split written
    path = entry.get("path")
    if path is None:
        files = {
            split: entry[split] for split in ("train", "test") if isinstance(entry.get(split), str)
        }
        if "train" not in files:
            raise FewtuneError(
                f"task '{task.name}': '{key}' needs 'path' (a dataset) or 'train' (a data file); see docs/custom-tasks.md"
            )
        paths = {split: _local(base, name) for split, name in files.items()}
        return {split: _load_file(task, path, key) for split, path in paths.items()}, ", ".join(
            map(str, paths.values())
        )
    local = _local(base, str(path))
    if local.exists():
        if local.is_file():
            return {"train": _load_file(task, local, key)}, str(local)
        if any((local / marker).is_file() for marker in SAVED_MARKERS):
            data = _guard(task, key, local, lambda: datasets.load_from_disk(str(local)))
            return (data if isinstance(data, Mapping) else {"train": data}), str(local)
        for file in sorted(local.rglob("*")):
            if file.suffix in BUILDERS and BUILDERS[file.suffix][2]:
                check_file(file, BUILDERS[file.suffix][2])
        return _guard(task, key, local, lambda: datasets.load_dataset(str(local))), str(local)
    if not hub_id_like(str(path)):
        raise FewtuneError(
            f"task '{task.name}': {key}.path {local} does not exist; give a folder, a data file or a hub id "
            "(relative paths are under the sampler's --source)"
        )
    name = entry.get("name")
    source = f"{path}" + (f" ({name})" if name else "")
    try:
        data = datasets.load_dataset(str(path), name)
    except Exception as err:  # offline, unknown id, ...: one line that names the dataset
        raise FewtuneError(
            f"task '{task.name}': cannot load hub dataset '{path}': {_first_line(err)}"
        ) from None
    return data, source


def hub_id_like(path: str) -> bool:
    """'imdb', 'org/name': what the hub names; a path with a suffix or several parts is a local one."""
    parts = path.split("/")
    return len(parts) <= 2 and not path.startswith((".", "~")) and Path(path).suffix not in BUILDERS


def _local(base: Path | None, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() or base is None else Path(base) / path


def _load_file(task, path: Path, key: str):
    """One data file as a Dataset, after a strict read for its problems."""
    import datasets

    if not path.is_file():
        raise FewtuneError(f"task '{task.name}': the data file {path} ({key}) does not exist")
    if path.suffix not in BUILDERS:
        raise FewtuneError(
            f"task '{task.name}': {path} is neither of {sorted(BUILDERS)}; convert it, or load it with "
            "datasets and save_to_disk, then give that folder as path"
        )
    builder, options, fmt = BUILDERS[path.suffix]
    if fmt:
        check_file(path, fmt)
    return _guard(
        task,
        key,
        path,
        lambda: datasets.load_dataset(builder, data_files=str(path), split="train", **options),
    )


def _guard(task, key: str, where: Path, load):
    try:
        return load()
    except FewtuneError:
        raise
    except Exception as err:
        raise FewtuneError(
            f"task '{task.name}': datasets cannot read {where} ({key}): {_first_line(err)}"
        ) from None


def _first_line(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _split(splits: Mapping[str, Any], name: str, source: str, task, which: str):
    if name not in splits:
        held_out = ", or hold out a share of train with test_size: 0.2" if which == "test" else ""
        raise FewtuneError(
            f"dataset {source} has no split '{name}' (it has {list(splits)}); name the {which} split or file "
            f"with '{which}' in task '{task.name}'s dataset entry{held_out}"
        )
    dataset = splits[name]
    if len(dataset) == 0:
        raise FewtuneError(
            f"dataset {source}: its '{name}' split is empty; task '{task.name}' needs examples there"
        )
    return dataset


def _records(
    task, dataset, names: dict[str, str], label_map: dict[str, str], source: str, place: str
):
    """({field: text, "label": label} per example, each one's place); whitespace runs become one
    space, since a TSV cell holds no tab or line break."""
    missing = [c for c in names.values() if c not in dataset.column_names]
    if missing:
        raise FewtuneError(
            f"dataset {source} has no column(s) {missing} (it has {dataset.column_names}); map task fields to "
            f"its columns with 'columns' in task '{task.name}'s dataset entry"
        )
    label_names = _class_names(dataset, names["label"])
    records, where = [], []
    for i, record in enumerate(dataset):
        value = record[names["label"]]
        text = str(value)
        if (
            text not in label_map
            and label_names
            and isinstance(value, int)
            and 0 <= value < len(label_names)
        ):
            text = text if text in task.labels else label_names[value]  # a ClassLabel's name
        out = {
            f: " ".join(str(record[names[f]] if record[names[f]] is not None else "").split())
            for f in task.text_fields
        }
        out["label"] = label_map.get(text, text)
        records.append(out)
        where.append(f"{place} row {i + 1}")
    return records, where


def _class_names(dataset, column: str) -> list[str] | None:
    feature = dataset.features.get(column)
    return list(feature.names) if hasattr(feature, "names") else None
