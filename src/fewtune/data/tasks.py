"""Tasks: what a task config declares, and reading its K-shot files into examples.

A task is one YAML file in conf/task/: its folder in LM-BFF's k-shot layout, the file of each
split, which column holds which field, the label set (or, for a regression task such as
STS-B, the score range), the metric, the templates and the verbalizer. Adding a task needs
no code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewtune.data.task_checks import check_task_config
from fewtune.data.text_files import json_lines, read_text, table_rows
from fewtune.data.verbalizers import check_settings, word_list
from fewtune.errors import FewtuneError

SPLITS = ("train", "dev", "test")
FORMATS = ("tsv", "csv", "jsonl")
# A regression task's verbalizer names the words for the two ends of its score range.
SCORE_ENDS = ("low", "high")
_SPLIT_KEYS = ("path", "format", "header", "columns")


@dataclass(frozen=True)
class Example:
    """One labelled example: its text fields by name and its label as written in the data."""

    fields: Mapping[str, str]
    label: str
    guid: str = ""


@dataclass(frozen=True)
class SplitFile:
    """Where a split is read from and how.

    A plain file name in the task YAML lives in the K-shot folder and uses the task's format
    and columns. A mapping gives a ``path`` relative to the data folder, shared by every K and
    seed (MNLI's and SNLI's test sets in original/ are JSONL), with its own format and columns.
    """

    path: str
    format: str
    header: bool
    columns: Mapping[str, Any]
    shared: bool = False  # True: under data_dir, not in the K-shot folder


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dir: str
    format: str
    header: bool
    splits: Mapping[str, SplitFile]
    columns: Mapping[str, Any]
    labels: tuple[str, ...]
    metric: str
    templates: Mapping[str, str]
    verbalizer: Mapping[str, str | tuple[str, ...]]  # a word, or several (data/verbalizers.py)
    text_fields: tuple[str, ...] = field(default=("sentence",))
    max_length: int = 128
    title: str = ""
    # Regression (STS-B): the label is a score in score_range, not one of ``labels``.
    regression: bool = False
    score_range: tuple[float, float] | None = None
    # Several words per label: the class scores their mean or max; a word of several tokens:
    # the sum or mean of its tokens' log-probs (None: sum for causal LMs, mean for masked LMs).
    verbalizer_reduce: str = "mean"
    multi_token: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TaskSpec:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        check_task_config(cfg)
        cfg = {**_defaults(cfg), **{k: v for k, v in dict(cfg).items() if v is not None}}
        name = cfg["name"]
        regression = bool(cfg.get("regression", False))
        labels = tuple(str(label) for label in cfg.get("labels") or ())
        spec = cls(
            name=name,
            dir=cfg["dir"],
            format=cfg["format"],
            header=bool(cfg["header"]),
            splits={
                split: _split_file(name, split, entry, cfg)
                for split, entry in dict(cfg["splits"]).items()
            },
            columns=dict(cfg["columns"]),
            labels=labels,
            metric=cfg["metric"],
            templates=dict(cfg["template"]),
            verbalizer=_label_words(name, cfg["verbalizer"]),
            text_fields=tuple(cfg.get("text_fields", ("sentence",))),
            max_length=int(cfg.get("max_length", 128)),
            title=cfg.get("title") or name,
            regression=regression,
            score_range=_score_range(name, cfg.get("score_range")),
            verbalizer_reduce=cfg.get("verbalizer_reduce", "mean"),
            multi_token=cfg.get("multi_token"),
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        from fewtune.run.metrics import check_metric

        where = f"task '{self.name}'"
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise FewtuneError(f"{where}: no file named for split(s) {missing} under 'splits'")
        for split, source in self.splits.items():
            if source.format not in FORMATS:
                raise FewtuneError(
                    f"{where}: split '{split}' has format '{source.format}', not one of {list(FORMATS)}"
                )
            for name in (*self.text_fields, "label"):
                if name not in source.columns:
                    raise FewtuneError(
                        f"{where}: field '{name}' has no column under 'columns' (split '{split}')"
                    )
        self._validate_labels(where)
        check_metric(self.metric, self.regression, where)
        self._validate_verbalizer(where)
        check_settings(where, self.verbalizer_reduce, self.multi_token)
        from fewtune.data.prompts import Template

        for family, text in self.templates.items():  # before any model: a template that cannot work
            Template(text).check(self.text_fields, causal=family == "causal", task=self.name)

    def _validate_verbalizer(self, where: str) -> None:
        if set(self.verbalizer) == set(self.answer_keys):
            return
        if self.regression:
            raise FewtuneError(
                f"{where}: the verbalizer's keys {sorted(self.verbalizer)} must be {list(SCORE_ENDS)}, "
                "the words for the low and high ends of the score range"
            )
        raise FewtuneError(
            f"{where}: the verbalizer's labels {sorted(self.verbalizer)} differ from the "
            f"task's labels {list(self.labels)}; give one label word per label"
        )

    def _validate_labels(self, where: str) -> None:
        if not self.regression:
            if not self.labels:
                raise FewtuneError(
                    f"{where}: no 'labels'; list the labels, or set 'regression: true' for a score"
                )
            return
        if self.labels:
            raise FewtuneError(
                f"{where}: a regression task has a score, not 'labels'; remove 'labels'"
            )
        if self.score_range is None or not self.score_range[0] < self.score_range[1]:
            raise FewtuneError(
                f"{where}: a regression task needs 'score_range: [min, max]' with min < max"
            )

    @property
    def answer_keys(self) -> tuple[str, ...]:
        """What the verbalizer maps to words, in order: the labels, or the ends of the score range."""
        return SCORE_ENDS if self.regression else self.labels

    @property
    def num_outputs(self) -> int:
        """Outputs of a classifier head: one per label, or the score alone."""
        return 1 if self.regression else len(self.labels)

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def target(self, label: str) -> int | float:
        """The training target: the label's index, or the score scaled to [0, 1] (LM-BFF)."""
        if not self.regression:
            return self.label_index(label)
        low, high = self.score_range
        return (float(label) - low) / (high - low)

    def label_problem(self, label: str) -> str | None:
        """Why a label read from the data does not fit the task, or None."""
        if not self.regression:
            if label in self.labels:
                return None
            return f"label '{label}' is not one of task '{self.name}' labels {list(self.labels)}"
        low, high = self.score_range
        try:
            score = float(label)
        except ValueError:
            score = None
        if score is not None and low <= score <= high:
            return None
        return (
            f"score '{label}' is not a number in task '{self.name}' score_range [{low:g}, {high:g}]"
        )

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
            raise FewtuneError(
                f"task '{self.name}': no folder {task_dir}; is {data_dir} the LM-BFF data folder?"
            )
        folder = task_dir / f"{k}-{seed}"
        if not folder.is_dir():
            available = sorted(p.name for p in task_dir.iterdir() if p.is_dir())
            raise FewtuneError(
                f"task '{self.name}': no split for K={k}, seed={seed} ({folder} does not exist); "
                f"available: {', '.join(available) or 'none'}"
            )
        return folder

    def split_path(self, split: str, folder: Path, data_dir: str | Path | None = None) -> Path:
        """The file of ``split``, checked to exist; ``folder`` is the K-shot folder."""
        if split not in SPLITS:
            raise FewtuneError(f"split '{split}' is not one of {list(SPLITS)}")
        source = self.splits[split]
        base = Path(folder)
        if source.shared:
            # <data_dir>/k-shot/<TASK>/<K>-<seed>/ is the layout split_dir checks.
            base = Path(data_dir) if data_dir is not None else base.parents[2]
        path = base / source.path
        if not path.is_file():
            hint = (
                "; add it, or evaluate on the dev split instead with test_split=dev"
                if split == "test"
                else ""
            )
            raise FewtuneError(f"task '{self.name}': the {split} file {path} does not exist{hint}")
        return path

    def check_files(self, data_dir: str | Path, k: int, seed: int, splits=SPLITS) -> Path:
        """The K-shot folder, once the file of each of ``splits`` is known to exist."""
        folder = self.split_dir(data_dir, k, seed)
        for split in splits:
            self.split_path(split, folder, data_dir)
        return folder

    def read_split(
        self, folder: Path, split: str, data_dir: str | Path | None = None
    ) -> list[Example]:
        return read_examples(self, self.split_path(split, folder, data_dir), self.splits[split])


def _defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a task may leave out: its folder is its name, its files are train/dev/test.<format>."""
    fmt = cfg["format"]
    return {"dir": cfg["name"], "header": False, "splits": {s: f"{s}.{fmt}" for s in SPLITS}}


def _split_file(task: str, split: str, entry: Any, cfg: Mapping[str, Any]) -> SplitFile:
    """A split entry of the task YAML: a file name in the K-shot folder, or a mapping (see SplitFile)."""
    defaults = dict(format=cfg["format"], header=bool(cfg["header"]), columns=dict(cfg["columns"]))
    if isinstance(entry, str):
        return SplitFile(path=entry, **defaults)
    if not isinstance(entry, Mapping) or "path" not in entry:
        raise FewtuneError(
            f"task '{task}': split '{split}' must be a file name or a mapping with 'path' "
            f"(relative to the data folder) and optional {list(_SPLIT_KEYS[1:])}"
        )
    unknown = sorted(set(entry) - set(_SPLIT_KEYS))
    if unknown:
        raise FewtuneError(
            f"task '{task}': split '{split}' has unknown key(s) {unknown}; use {list(_SPLIT_KEYS)}"
        )
    return SplitFile(
        path=str(entry["path"]),
        format=entry.get("format", defaults["format"]),
        header=bool(entry.get("header", defaults["header"])),
        columns=dict(entry.get("columns", defaults["columns"])),
        shared=True,
    )


def _score_range(task: str, value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(x) for x in value)
    except (TypeError, ValueError):
        raise FewtuneError(
            f"task '{task}': score_range {value!r} is not [min, max], two numbers"
        ) from None
    return low, high


def _label_words(task: str, verbalizer: Mapping[Any, Any]) -> dict[str, str | tuple[str, ...]]:
    """label -> its word, or its words (a tuple) where the YAML lists several."""
    words = {}
    for key, value in verbalizer.items():
        listed = word_list(f"task '{task}'", key, value)
        words[str(key)] = value if isinstance(value, str) else listed
    return words


def _rows(
    source: SplitFile, path: Path, same_width: bool = True
) -> Iterator[tuple[int, list | dict]]:
    """Yield (line number, row): a list of cells for TSV/CSV, a dict for JSONL; read strictly
    (data/text_files.py: encoding, quotes and row widths name their file and line)."""
    text = read_text(path)  # a byte-order mark (MRPC's) is dropped
    if source.format == "jsonl":
        return json_lines(text, path)
    # TSVs are not quoted (GLUE), CSVs are (LM-BFF/pandas).
    return table_rows(text, path, source.format, same_width)


def _column_keys(
    spec: TaskSpec, source: SplitFile, path: Path, header: list[str] | None
) -> dict[str, Any]:
    """field -> list index (TSV/CSV; a header name becomes its position) or dict key (JSONL)."""
    keys = {}
    for name in (*spec.text_fields, "label"):
        column = source.columns[name]
        if header is None and source.format != "jsonl" and not isinstance(column, int):
            raise FewtuneError(
                f"task '{spec.name}': {path.name} has no header, so field '{name}' needs a column index, not '{column}'"
            )
        if header is not None and isinstance(column, str):
            if column not in header:
                raise FewtuneError(
                    f"{path}: no column '{column}' in the header {header} (task '{spec.name}' field '{name}')"
                )
            column = header.index(column)
        keys[name] = column
    return keys


def read_examples(spec: TaskSpec, path: Path, source: SplitFile | None = None) -> list[Example]:
    """Read one split file; ``source`` says its format and columns (default: the task's own)."""
    source = source or SplitFile(
        path=str(path), format=spec.format, header=spec.header, columns=spec.columns
    )
    # Rows of another width are refused, unless the task counts columns from the end (SNLI's -1).
    ragged = any(isinstance(c, int) and c < 0 for c in source.columns.values())
    rows = _rows(source, path, same_width=not ragged)
    header = None
    if source.header and source.format != "jsonl":
        header = next((row for _, row in rows), [])
    keys = _column_keys(spec, source, path, header)
    examples = []
    for line_no, row in rows:
        try:
            values = {name: row[key] for name, key in keys.items()}
        except (KeyError, IndexError, TypeError):
            raise FewtuneError(
                f"{path} line {line_no}: the row has no column for some of {dict(source.columns)} (task '{spec.name}')"
            ) from None
        fields = {name: str(values[name]).strip() for name in spec.text_fields}
        label = str(values["label"]).strip()
        problem = spec.label_problem(label)
        if problem:
            raise FewtuneError(f"{path} line {line_no}: {problem}; fix the data or the task config")
        examples.append(Example(fields=fields, label=label, guid=f"{path.stem}-{line_no}"))
    if not examples:
        raise FewtuneError(
            f"{path}: no examples in this file{' (only its header)' if header else ''}; "
            f"task '{spec.name}' needs labelled rows in each split"
        )
    return examples


def check_k_shot(spec: TaskSpec, examples: list[Example], k: int, split: str) -> None:
    """K per class must be available in train and dev, as LM-BFF's protocol requires."""
    if spec.regression:
        return  # a score has no classes to count
    counts = {label: 0 for label in spec.labels}
    for ex in examples:
        counts[ex.label] += 1
    short = {label: n for label, n in counts.items() if n < k}
    if short:
        raise FewtuneError(
            f"task '{spec.name}': K={k} examples per class asked but the {split} split has only "
            f"{short} (label: count); use a smaller k or build a bigger split"
        )
