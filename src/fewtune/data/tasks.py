"""Tasks: what a task config declares, and reading its K-shot files into examples.

A task is one YAML file in conf/task/: its folder in LM-BFF's k-shot layout, the file of each
split, which column holds which field, the label set, the metric, the templates and the
verbalizer. Adding a task needs no code.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fewtune.errors import FewtuneError

SPLITS = ("train", "dev", "test")
FORMATS = ("tsv", "csv")


@dataclass(frozen=True)
class Example:
    """One labelled example: its text fields by name and its label as written in the data."""

    fields: Mapping[str, str]
    label: str
    guid: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dir: str
    format: str
    header: bool
    splits: Mapping[str, str]
    columns: Mapping[str, Any]
    labels: tuple[str, ...]
    metric: str
    templates: Mapping[str, str]
    verbalizer: Mapping[str, str]
    text_fields: tuple[str, ...] = field(default=("sentence",))
    max_length: int = 128
    title: str = ""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "TaskSpec":
        cfg = dict(cfg)
        labels = tuple(str(label) for label in cfg["labels"])
        verbalizer = {str(k): str(v) for k, v in cfg["verbalizer"].items()}
        spec = cls(
            name=cfg["name"],
            dir=cfg["dir"],
            format=cfg["format"],
            header=bool(cfg["header"]),
            splits=dict(cfg["splits"]),
            columns=dict(cfg["columns"]),
            labels=labels,
            metric=cfg["metric"],
            templates=dict(cfg["template"]),
            verbalizer=verbalizer,
            text_fields=tuple(cfg.get("text_fields", ("sentence",))),
            max_length=int(cfg.get("max_length", 128)),
            title=cfg.get("title") or cfg["name"],
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        where = f"task '{self.name}'"
        if self.format not in FORMATS:
            raise FewtuneError(f"{where}: format '{self.format}' is not one of {list(FORMATS)}")
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise FewtuneError(f"{where}: no file named for split(s) {missing} under 'splits'")
        for name in (*self.text_fields, "label"):
            if name not in self.columns:
                raise FewtuneError(f"{where}: field '{name}' has no column under 'columns'")
        if set(self.verbalizer) != set(self.labels):
            raise FewtuneError(
                f"{where}: the verbalizer's labels {sorted(self.verbalizer)} differ from the "
                f"task's labels {list(self.labels)}; give one label word per label"
            )

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def split_dir(self, data_dir: str | Path, k: int, seed: int) -> Path:
        """LM-BFF's layout: <data_dir>/k-shot/<TASK>/<K>-<seed>/, with clear errors."""
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise FewtuneError(
                f"data folder {data_dir} does not exist; point to the LM-BFF data with "
                "FEWTUNE_DATA_DIR=<folder> or paths.data_dir=<folder> (it holds k-shot/<TASK>/<K>-<seed>/)"
            )
        task_dir = data_dir / "k-shot" / self.dir
        if not task_dir.is_dir():
            raise FewtuneError(f"task '{self.name}': no folder {task_dir}; is {data_dir} the LM-BFF data folder?")
        folder = task_dir / f"{k}-{seed}"
        if not folder.is_dir():
            available = sorted(p.name for p in task_dir.iterdir() if p.is_dir())
            raise FewtuneError(
                f"task '{self.name}': no split for K={k}, seed={seed} ({folder} does not exist); "
                f"available: {', '.join(available) or 'none'}"
            )
        return folder

    def read_split(self, folder: Path, split: str) -> list[Example]:
        path = folder / self.splits[split]
        if not path.is_file():
            raise FewtuneError(f"task '{self.name}': the {split} file {path} does not exist")
        return read_examples(self, path)


def _rows(spec: TaskSpec, path: Path):
    """Yield (line number, {column: value}) with columns named by header or by index."""
    delimiter = "\t" if spec.format == "tsv" else ","
    # utf-8-sig drops MRPC's byte-order mark; TSVs are not quoted (GLUE), CSVs are (LM-BFF/pandas).
    quoting = csv.QUOTE_NONE if spec.format == "tsv" else csv.QUOTE_MINIMAL
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter, quoting=quoting)
        header = next(reader) if spec.header else None
        for line_no, row in enumerate(reader, start=2 if header else 1):
            if not row:
                continue
            if header is not None:
                yield line_no, dict(zip(header, row))
            else:
                yield line_no, dict(enumerate(row))


def read_examples(spec: TaskSpec, path: Path) -> list[Example]:
    examples = []
    declared = set(spec.labels)
    for line_no, row in _rows(spec, path):
        try:
            fields = {name: row[spec.columns[name]].strip() for name in spec.text_fields}
            label = row[spec.columns["label"]].strip()
        except KeyError as missing:
            raise FewtuneError(
                f"{path} line {line_no}: no column {missing} (task '{spec.name}' columns: {dict(spec.columns)})"
            ) from None
        if label not in declared:
            raise FewtuneError(
                f"{path} line {line_no}: label '{label}' is not one of task '{spec.name}' labels "
                f"{list(spec.labels)}; fix the data or the task's 'labels'"
            )
        examples.append(Example(fields=fields, label=label, guid=f"{path.stem}-{line_no}"))
    return examples


def check_k_shot(spec: TaskSpec, examples: list[Example], k: int, split: str) -> None:
    """K per class must be available in train and dev, as LM-BFF's protocol requires."""
    counts = {label: 0 for label in spec.labels}
    for ex in examples:
        counts[ex.label] += 1
    short = {label: n for label, n in counts.items() if n < k}
    if short:
        raise FewtuneError(
            f"task '{spec.name}': K={k} examples per class asked but the {split} split has only "
            f"{short} (label: count); use a smaller k or build a bigger split"
        )
