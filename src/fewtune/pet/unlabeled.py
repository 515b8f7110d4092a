"""PET's unlabeled examples: the task's original pool (what ``fewtune.sample`` draws K-shot splits
from) less the run's K-shot train and dev examples, or a file the user names; at most
``method.unlabeled`` of them, drawn with the seed.

The pool's own labels are never read by PET: its examples are labelled by the patterns' ensemble.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from fewtune.data.originals import load_pool, sentence_key
from fewtune.data.tasks import Example, TaskSpec, read_examples
from fewtune.data.text_files import read_text
from fewtune.errors import FewtuneError

FILE_SETTING = "method.unlabeled_file"


def unlabeled_examples(
    cfg, task: TaskSpec, limit: int | None, file: str | None, kshot: list[Example]
):
    """(examples, where they came from): the pool or ``file`` without the K-shot examples (and
    without repeats), then ``limit`` of them drawn with ``cfg.seed``."""
    examples, source = read_file(file, task) if file else original_pool(cfg, task)
    seen = {text_key(task, ex) for ex in kshot}
    kept = []
    for ex in examples:
        key = text_key(task, ex)
        if key not in seen:
            seen.add(key)
            kept.append(ex)
    if not kept:
        raise FewtuneError(
            f"method=pet: {source} has no examples besides the K-shot ones; give more with {FILE_SETTING}"
        )
    if limit is not None and len(kept) > limit:
        kept = random.Random(cfg.seed).sample(kept, limit)
    return kept, source


def text_key(task: TaskSpec, example: Example) -> tuple[str, ...]:
    # The pool's notion of the same sentence: the raw SentEval files and LM-BFF's splits decode a
    # few characters differently (originals.py).
    return tuple(sentence_key(example.fields[f]) for f in task.text_fields)


def original_pool(cfg, task: TaskSpec) -> tuple[list[Example], str]:
    """The task's ``original`` training pool under <data_dir>/original, read as a K-shot train file is."""
    task_cfg = OmegaConf.to_container(cfg.task, resolve=True)
    original = task_cfg.get("original")
    if not original:
        raise FewtuneError(
            f"method=pet needs unlabeled examples and task '{task.name}' names no original pool: add an 'original' "
            f"entry to conf/task/{task.name}.yaml, or give {FILE_SETTING}=<file>"
        )
    source = Path(cfg.paths.data_dir) / "original"
    folder = source / original["dir"]
    if not folder.is_dir():
        raise FewtuneError(
            f"method=pet: the unlabeled pool {folder} does not exist; set paths.data_dir (FEWTUNE_DATA_DIR) to a "
            f"data folder with original/{original['dir']}, or give {FILE_SETTING}=<file>"
        )
    pool = load_pool(task, task_cfg, source)
    with tempfile.TemporaryDirectory() as tmp:
        # The pool in the train split's own format, so that the K-shot reader parses it.
        path = Path(tmp) / "pool"
        path.write_text(pool.render(pool.rows), encoding="utf-8")
        return read_examples(task, path, task.splits["train"]), pool.source


def read_file(file: str, task: TaskSpec) -> tuple[list[Example], str]:
    """One text a line, or for any task JSON lines with its text fields (a .jsonl file)."""
    path = Path(file).expanduser()
    fields = list(task.text_fields)
    if not path.is_file():
        raise FewtuneError(
            f"{FILE_SETTING}={path} does not exist; give a file with one text a line, or JSON lines with {fields}"
        )
    lines = [
        (n, line.strip()) for n, line in enumerate(read_text(path).splitlines(), 1)
    ]  # UTF-8, or file and line
    lines = [(n, line) for n, line in lines if line]
    if path.suffix == ".jsonl":
        return [_json_example(path, n, line, fields) for n, line in lines], str(path)
    if len(fields) != 1:
        raise FewtuneError(
            f"{FILE_SETTING}={path}: task '{task.name}' has the fields {fields}; give them as JSON lines (.jsonl)"
        )
    return [
        Example(fields={fields[0]: line}, label="", guid=f"unlabeled-{n}") for n, line in lines
    ], str(path)


def _json_example(path: Path, line_no: int, line: str, fields: list[str]) -> Example:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise FewtuneError(f"{path} line {line_no}: not a JSON object ({err.msg})") from None
    missing = [f for f in fields if not isinstance(record, dict) or f not in record]
    if missing:
        raise FewtuneError(
            f"{path} line {line_no}: no field(s) {missing}; each line needs {fields}"
        )
    return Example(
        fields={f: str(record[f]).strip() for f in fields}, label="", guid=f"unlabeled-{line_no}"
    )
