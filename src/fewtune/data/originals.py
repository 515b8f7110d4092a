"""A task's full data, the pool that ``fewtune.sample`` draws K-shot splits from.

Where it is comes from the task's config (conf/task/<name>.yaml, or a user's config folder).
A user's own data (CSV or TSV with a header, JSON Lines, a saved or hub dataset) goes in a
``dataset`` entry, read with Hugging Face datasets (fewtune/data/dataset_source.py and
docs/custom-tasks.md). LM-BFF's files use one of three forms:

    original:                    # files under --source (default ../shared/data/original)
      dir: SST-2
      train: train.tsv           # the pool, in the task's own format (format, header, columns)
      test: dev.tsv              # written as the test split (GLUE: the original dev set)
      group_threshold: 2.5       # regression: group scores below / above it (default: mid-range, as LM-BFF's STS-B)

    original:                    # one sentence a line, one file per label (SentEval's MR, CR, ...)
      dir: senteval-raw
      train: {"0": rt-polarity.neg, "1": rt-polarity.pos}
      encoding: cp1252
      test: ../k-shot/mr/16-13/test.csv   # an existing test set: copied, its sentences leave the pool

    hub:                         # a Hugging Face dataset (needs the hub)
      path: nyu-mll/glue
      name: cola
      train: train
      test: validation
      columns: {sentence: sentence}   # task field -> dataset column (default: the same name)
      labels: {0: "0", 1: "1"}        # dataset label -> task label (default: the value as text)

Every form gives a ``Pool``: the training rows in file order, each row's label, and the test
file's bytes. Rows are kept exactly as LM-BFF's script keeps them (TSV lines; CSV rows as
pandas reads them), which is what makes its splits reproducible byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewtune.data.dataset_source import Records, load_records
from fewtune.data.tasks import TaskSpec
from fewtune.data.text_files import check_file, text_lines
from fewtune.errors import FewtuneError


@dataclass
class Pool:
    format: str  # "csv": rows are lists of cells; otherwise rows are text lines
    rows: list
    labels: list[str]  # each row's label: its group in LM-BFF's balanced sampling
    header: list[str]  # lines written before the train and dev rows (a GLUE header)
    test: bytes
    source: str  # where the pool came from, for messages

    def render(self, rows: list) -> str:
        """Rows as a file in the pool's format, written the way LM-BFF's script writes them."""
        if self.format != "csv":
            return "".join(self.header) + "".join(rows)
        return csv_text(rows)


def csv_text(rows: list) -> str:
    import pandas as pd

    # LM-BFF: DataFrame(rows).to_csv(path, header=False, index=False), on Linux.
    return pd.DataFrame(rows).to_csv(header=False, index=False, lineterminator="\n")


def load_pool(task: TaskSpec, cfg: Mapping[str, Any], source: Path, use_hub: bool = False) -> Pool:
    original, hub, dataset = cfg.get("original"), cfg.get("hub"), cfg.get("dataset")
    if dataset and not use_hub:
        return records_pool(
            task, load_records(task, dataset, source), dataset.get("group_threshold")
        )
    if use_hub or not original:
        if not hub:
            raise FewtuneError(
                f"task '{task.name}' names no {'hub dataset' if use_hub else 'data to sample from'}: add "
                f"{'a hub' if use_hub else 'a dataset'} entry to its config (see docs/custom-tasks.md)"
            )
        return records_pool(
            task, load_records(task, hub, None, hub=True), hub.get("group_threshold"), "hub"
        )
    folder = Path(source) / original["dir"]
    if not folder.is_dir():
        hint = " or --hub to use its Hugging Face dataset" if hub else ""
        raise FewtuneError(
            f"task '{task.name}': no folder {folder} with its original data; give --source <folder>{hint}"
        )
    if isinstance(original["train"], Mapping):
        return sentence_files_pool(task, original, folder)
    train, test = folder / original["train"], folder / original["test"]
    for path in (train, test):
        if not path.is_file():
            raise FewtuneError(f"task '{task.name}': the original data file {path} does not exist")
    if task.format == "tsv":
        return tsv_pool(task, train, test, original.get("group_threshold"))
    return csv_pool(task, train, test)


def _label_column(task: TaskSpec, header: list[str], path: Path) -> int:
    column = task.splits["train"].columns["label"]
    if isinstance(column, int):
        return column
    names = header[0].rstrip("\r\n").lstrip("\ufeff").split("\t") if header else []
    if column not in names:
        raise FewtuneError(
            f"task '{task.name}': no column '{column}' in the header of {path} ({names})"
        )
    return names.index(column)


def _group(
    task: TaskSpec, value: str, threshold: float | None, where: str, entry: str = "original"
) -> str:
    """The row's group in the balanced sampling: its label, or for a score its bin."""
    if task.regression:
        # LM-BFF's STS-B: scores below 2.5 (the middle of [0, 5]) in one group, the rest in the other.
        threshold = threshold if threshold is not None else sum(task.score_range) / 2
        try:
            return "0" if float(value) < threshold else "1"
        except ValueError:
            raise FewtuneError(
                f"{where}: score '{value}' is not a number; check the task's 'columns'"
            ) from None
    problem = task.label_problem(value)
    if problem:
        raise FewtuneError(
            f"{where}: {problem}; check the task's 'labels', 'columns' and '{entry}' entries"
        )
    return value


def tsv_pool(task: TaskSpec, train: Path, test: Path, threshold: float | None = None) -> Pool:
    """GLUE style: lines as read (header kept apart), label by column, test copied line by line."""
    lines = text_lines(train)
    header, lines = (lines[:1], lines[1:]) if task.header else ([], lines)
    column = _label_column(task, header, train)
    # A row wider than the header is a tab inside the text, unless the task counts from the end (SNLI's -1).
    width = len(header[0].split("\t")) if header and column >= 0 else None
    rows, labels = [], []
    for line_no, line in enumerate(lines, start=len(header) + 1):
        if not line.strip():
            continue  # a blank line is no example (LM-BFF's script would sample it)
        cells = line.rstrip("\r\n").split("\t")
        if column >= len(cells):
            raise FewtuneError(
                f"{train} line {line_no}: no column {column} (the label) in {len(cells)} columns"
            )
        if width is not None and len(cells) != width:
            raise FewtuneError(
                f"{train} line {line_no}: {len(cells)} columns where the header has {width} (a tab inside the text? remove it)"
            )
        rows.append(line if line.endswith("\n") else line + "\n")
        labels.append(_group(task, cells[column].strip(), threshold, f"{train} line {line_no}"))
    test_text = "".join(text_lines(test))
    return Pool("tsv", rows, labels, header, test_text.encode("utf-8"), str(train))


def csv_pool(task: TaskSpec, train: Path, test: Path) -> Pool:
    """LM-BFF's CSV tasks: rows read by pandas with no header; the test set re-written by pandas."""
    import pandas as pd

    if task.header:
        raise FewtuneError(
            f"task '{task.name}': 'original' reads LM-BFF's CSV files, which have no header; give a CSV with a "
            "header as a 'dataset' entry instead (docs/custom-tasks.md)"
        )
    for path in (train, test):  # pandas would read a broken row silently
        check_file(path, "csv", header=False)
    column = task.splits["train"].columns["label"]
    rows = pd.read_csv(train, header=None).values.tolist()
    labels = [
        _group(task, str(row[column]), None, f"{train} row {i + 1}") for i, row in enumerate(rows)
    ]
    test_text = csv_text(pd.read_csv(test, header=None).values.tolist())
    return Pool("csv", rows, labels, [], test_text.encode("utf-8"), str(train))


def sentence_key(text: str) -> str:
    # The raw files and LM-BFF's test set decode a few characters differently; compare without them.
    return re.sub(r"\s+", " ", "".join(c for c in text if c.isascii())).strip().lower()


def sentence_files_pool(task: TaskSpec, original: Mapping[str, Any], folder: Path) -> Pool:
    """One sentence a line, one file per label; the sentences of the given test set are left out."""
    import pandas as pd

    if task.format != "csv" or len(task.text_fields) != 1:
        raise FewtuneError(
            f"task '{task.name}': one-file-per-label data needs a single-sentence CSV task"
        )
    test = folder / original["test"]
    if not test.is_file():
        raise FewtuneError(f"task '{task.name}': the test set {test} does not exist")
    field = task.text_fields[0]
    held_out = {
        sentence_key(str(s))
        for s in pd.read_csv(test, header=None)[task.splits["test"].columns[field]]
    }
    records, labels, seen = [], [], set()
    for label, name in original["train"].items():
        label = _group(task, str(label), None, f"task '{task.name}' original.train")
        path = folder / name
        if not path.is_file():
            raise FewtuneError(f"task '{task.name}': the original data file {path} does not exist")
        for line in path.read_text(encoding=original.get("encoding", "utf-8")).split("\n"):
            text, key = line.strip(), sentence_key(line)
            if not text or key in held_out or key in seen:
                continue  # no test sentence and no duplicate in the pool
            seen.add(key)
            records.append({"label": label, field: text})
            labels.append(label)
    _, rows = _render_records(records, task.splits["train"])
    return Pool("csv", rows, labels, [], test.read_bytes(), str(folder))


def _render_records(records: list[dict], source) -> tuple[list[str], list]:
    """(header lines, rows) of {field: value} records in a split file's format and columns: text
    lines, or for a CSV without a header lists of cells (written by pandas, as LM-BFF's)."""
    columns = source.columns
    if source.format == "jsonl":
        return [], [
            json.dumps({columns[f]: v for f, v in r.items()}, ensure_ascii=False) + "\n"
            for r in records
        ]
    if source.format == "tsv" and source.header:
        header = ["\t".join(columns.values()) + "\n"]
        return header, ["\t".join(r.get(f, "") for f in columns) + "\n" for r in records]
    if source.format == "csv" and source.header:
        lines = [_csv_line(list(columns.values()))]
        return lines[:1], [_csv_line([r.get(f, "") for f in columns]) for r in records]
    width = max(columns.values()) + 1  # columns by index, blanks between them (CoLA's)
    rows = []
    for r in records:
        cells = [""] * width
        for f, v in r.items():
            cells[columns[f]] = v
        rows.append("\t".join(cells) + "\n" if source.format == "tsv" else cells)
    return [], rows


def _csv_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def records_pool(
    task: TaskSpec, records: Records, threshold: float | None = None, entry: str = "dataset"
) -> Pool:
    """A dataset's train and test records, written in the task's own formats."""
    groups = [
        _group(task, r["label"], threshold, where, entry)
        for r, where in zip(records.train, records.where)
    ]
    header, rows = _render_records(records.train, task.splits["train"])
    test_split = task.splits["test"]
    test_header, test_rows = _render_records(records.test, test_split)
    cells = test_split.format == "csv" and not test_split.header
    test = csv_text(test_rows) if cells else "".join(test_header + test_rows)
    fmt = (
        "csv"
        if task.splits["train"].format == "csv" and not task.splits["train"].header
        else "lines"
    )
    return Pool(fmt, rows, groups, header, test.encode("utf-8"), records.source)
