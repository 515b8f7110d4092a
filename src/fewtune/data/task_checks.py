"""A task config as the user typed it: every key present and of the right kind, or one line
saying which key is wrong and how to write it. Runs before ``TaskSpec`` reads the keys, so that
no mistake in a task's YAML ends in a KeyError or TypeError."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fewtune.errors import FewtuneError

REQUIRED = ("name", "format", "columns", "metric", "template", "verbalizer")
NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
FIELD = re.compile(r"^\w+$")  # what a template's {placeholder} can name
SCALARS = (str, int, float)


def check_task_config(cfg: Any) -> None:
    if not isinstance(cfg, Mapping):
        raise FewtuneError(
            f"a task config must be a mapping of keys (name, format, columns, ...), not {cfg!r}"
        )
    name = cfg.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise FewtuneError(
            f"task name {name!r}: give 'name' as letters, digits, '-', '_' or '.' (it names output folders)"
        )
    where = f"task '{name}'"
    missing = [key for key in REQUIRED if cfg.get(key) is None]
    if not cfg.get("regression") and cfg.get("labels") is None:
        missing.append("labels")
    if missing:
        raise FewtuneError(
            f"{where}: no {missing} in its config; see docs/custom-tasks.md for a complete task"
        )
    _kind(where, cfg, "dir", str, "a folder name under k-shot/", optional=True)
    _kind(where, cfg, "title", str, "text", optional=True)
    _kind(where, cfg, "format", str, "tsv, csv or jsonl")
    _kind(where, cfg, "header", bool, "true or false", optional=True)
    _kind(where, cfg, "regression", bool, "true or false", optional=True)
    _kind(where, cfg, "metric", str, "a metric name, e.g. acc")
    _kind(
        where, cfg, "splits", Mapping, "{train: <file>, dev: <file>, test: <file>}", optional=True
    )
    _kind(where, cfg, "columns", Mapping, "{<field>: <column name or index>, label: ...}")
    _kind(where, cfg, "template", Mapping, "{masked: '...', causal: '...'}")
    _kind(where, cfg, "verbalizer", Mapping, "{<label>: <word>, ...}")
    for key in ("verbalizer_reduce", "multi_token"):
        _kind(where, cfg, key, str, "a name", optional=True)
    max_length = cfg.get("max_length", 128)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 8:
        raise FewtuneError(
            f"{where}: max_length={max_length!r}: give a whole number of tokens, at least 8 (e.g. 128)"
        )
    _check_columns(where, cfg["columns"])
    _check_fields(where, cfg.get("text_fields", ("sentence",)))
    _check_labels(where, cfg.get("labels"))
    _check_templates(where, cfg["template"])


def _kind(where: str, cfg: Mapping, key: str, kind, example: str, optional: bool = False) -> None:
    value = cfg.get(key)
    if value is None and optional:
        return
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise FewtuneError(f"{where}: '{key}' is {value!r}; write it as {example}")


def _check_columns(where: str, columns: Mapping) -> None:
    for field, column in columns.items():
        if isinstance(column, bool) or not isinstance(column, (str, int)):
            raise FewtuneError(
                f"{where}: columns.{field} is {column!r}; give a column name (with a header) or a column index"
            )


def _check_fields(where: str, fields: Any) -> None:
    if isinstance(fields, str) or not isinstance(fields, (list, tuple)) or not fields:
        raise FewtuneError(
            f"{where}: text_fields is {fields!r}; list the text fields, e.g. [sentence]"
        )
    for field in fields:
        if not isinstance(field, str) or not FIELD.match(field) or field in ("label", "mask"):
            raise FewtuneError(
                f"{where}: text field {field!r}: give a name of letters, digits and '_' other than 'label' and "
                "'mask' (templates name it as {field})"
            )
    if len(set(fields)) != len(fields):
        raise FewtuneError(f"{where}: text_fields {list(fields)} names a field twice")


def _check_labels(where: str, labels: Any) -> None:
    if labels is None:
        return
    if isinstance(labels, (str, Mapping)) or not isinstance(labels, (list, tuple)):
        raise FewtuneError(
            f'{where}: labels is {labels!r}; list them as written in the data, e.g. ["0", "1"]'
        )
    for label in labels:
        if isinstance(label, bool):
            # YAML reads yes/no/true/false/on/off as booleans: the data's "yes" would never match.
            raise FewtuneError(
                f'{where}: label {label!r} is a YAML boolean; quote it as the data writes it (e.g. "yes")'
            )
        if not isinstance(label, SCALARS) or not str(label).strip():
            raise FewtuneError(
                f"{where}: label {label!r} is not a label as the data writes it; quote it as text"
            )
    names = [str(label) for label in labels]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise FewtuneError(f"{where}: labels {names} list {twice} more than once")
    if len(names) == 1:
        raise FewtuneError(
            f"{where}: labels {names} has one label; a classifier needs every label the data has (at least two)"
        )


def _check_templates(where: str, templates: Mapping) -> None:
    if not templates:
        raise FewtuneError(
            f"{where}: template is empty; give a template for 'masked' and/or 'causal' models"
        )
    unknown = sorted(set(map(str, templates)) - {"masked", "causal"})
    if unknown:
        raise FewtuneError(
            f"{where}: template has key(s) {unknown}; the keys are 'masked' and 'causal' (model families)"
        )
    for family, text in templates.items():
        if not isinstance(text, str):
            raise FewtuneError(
                f'{where}: template.{family} is {text!r}; write it as text, e.g. "{{sentence}} It was {{mask}}"'
            )
