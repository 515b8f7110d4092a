"""New texts to classify: a CSV, TSV (both with a header line) or JSON Lines file, and which of
its columns fills each of the task's text fields (``--text-column``).

    --text-column review                     the one field of a single-sentence task
    --text-column premise --text-column hyp  the fields in the task's order (sentence1, sentence2)
    --text-column sentence2=hyp              a field by name
    (none)                                   columns named as the fields (sentence; sentence1, sentence2)

Everything is checked here, before any weights load: the format, an empty file, a missing column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from fewtune.data.text_files import json_lines
from fewtune.errors import FewtuneError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}


@dataclass
class InputTable:
    path: Path
    columns: list[str]
    rows: list[dict[str, str]]


def format_of(path: Path, given: str | None = None, what: str = "--input") -> str:
    if given:
        if given not in FORMATS.values():
            raise FewtuneError(
                f"format '{given}' is unknown; use one of {sorted(FORMATS.values())}"
            )
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FewtuneError(
            f"{what} {path}: cannot tell its format from '{path.suffix}'; name it .csv, .tsv or .jsonl (or give --format)"
        )
    return fmt


def read_table(path: str | Path, fmt: str | None = None) -> InputTable:
    """The rows of a CSV/TSV (header line first) or JSON Lines file, every value as text."""
    path = Path(path)
    fmt = format_of(path, fmt)
    if not path.is_file():
        raise FewtuneError(f"--input {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise FewtuneError(f"--input {path} is empty: nothing to predict")
    if fmt == "jsonl":
        rows = _jsonl_rows(path, text)
        columns = list(dict.fromkeys(key for row in rows for key in row))
    else:
        # TSV as LM-BFF writes it: tabs, no quoting (a quote is part of the text); CSV: quoted fields
        quoting = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
        reader = csv.DictReader(text.splitlines(), **quoting)
        columns = list(reader.fieldnames or [])
        rows = [
            {key: value or "" for key, value in row.items() if key is not None} for row in reader
        ]
    if not rows:
        raise FewtuneError(f"--input {path} has a header line but no rows: nothing to predict")
    return InputTable(path, columns, rows)


def _jsonl_rows(path: Path, text: str) -> list[dict[str, str]]:
    return [
        {key: "" if value is None else str(value) for key, value in row.items()}
        for _, row in json_lines(text, path)
    ]


def column_map(
    text_columns: list[str], fields: tuple[str, ...], table: InputTable
) -> dict[str, str]:
    """{task field: input column}, checked against the file's columns."""
    if not text_columns:
        mapping = {field: field for field in fields}
    else:
        named = [c for c in text_columns if "=" in c]
        plain = [c for c in text_columns if "=" not in c]
        if named and plain:
            raise FewtuneError(
                "--text-column: give every column as FIELD=COLUMN, or every one by position, not both"
            )
        if plain:
            if len(plain) != len(fields):
                raise FewtuneError(
                    f"--text-column was given {len(plain)} column(s) but the task's template has {len(fields)} "
                    f"field(s) {list(fields)}; give one per field, in that order"
                )
            mapping = dict(zip(fields, plain))
        else:
            mapping = dict(c.split("=", 1) for c in named)
            unknown = sorted(set(mapping) - set(fields))
            if unknown:
                raise FewtuneError(
                    f"--text-column {unknown[0]}=...: the task has no field '{unknown[0]}'; its fields: {list(fields)}"
                )
            mapping = {field: mapping.get(field, field) for field in fields}
    for field, column in mapping.items():
        if column not in table.columns:
            how = f"--text-column {field}=<column>" if len(fields) > 1 else "--text-column <column>"
            raise FewtuneError(
                f"--input {table.path} has no column '{column}' for the template's field '{field}'; "
                f"its columns: {', '.join(table.columns) or 'none'}; choose one with {how}"
            )
    return mapping
