"""Apply a finished run to new texts: one labelled row per input row.

    python -m fewtune.predict <run dir> --input texts.csv --out labelled.csv
        [--text-column COLUMN | FIELD=COLUMN ...] [--format csv|tsv|jsonl]
        [--progress auto|rich|log|none] [key=value ...]

The input is a CSV or TSV with a header line, or JSON Lines; ``--text-column`` says which column
fills each field of the run's template (default: the columns named as the fields, e.g.
``sentence``). The run is rebuilt as ``python -m fewtune.evaluate`` rebuilds it (the shared
backbone plus its stored weights, its template, label words, demonstrations, calibration and
precision); ``key=value`` overrides its config (e.g. ``paths.data_dir=...``, which the run's
K-shot folder is read from). The output (.csv, .tsv, .jsonl or .parquet, written atomically) is
the input's columns plus ``predicted_label``, ``predicted_word`` and ``prob_<label>`` per label,
or ``predicted_score`` on the task's scale for a regression task.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from fewtune.errors import FewtuneError, saved_run_errors
from fewtune.jobs.atomic import write_file_atomic

log = logging.getLogger("fewtune")
OUT_FORMATS = (".csv", ".tsv", ".jsonl", ".parquet")


def predict(run_dir: str | Path, input_file: str | Path, out: str | Path, text_columns: list[str] = (),
            overrides: list[str] = (), fmt: str | None = None, progress: str = "auto") -> pd.DataFrame:  # fmt: skip
    """Label every row of ``input_file`` with the run, write ``out``; returns the written rows."""
    from fewtune.data.tasks import Example, TaskSpec
    from fewtune.predictions.apply import (
        placeholder_label,
        predict_examples,
        require_finished,
        require_weights,
    )
    from fewtune.predictions.inputs import column_map, read_table
    from fewtune.run import methods
    from fewtune.run.reload import run_config
    from fewtune.words.searched import task_config

    run_dir, out = Path(run_dir), Path(out)
    if out.suffix.lower() not in OUT_FORMATS:
        raise FewtuneError(
            f"--out {out}: name it {', '.join(OUT_FORMATS)} (the format follows the suffix)"
        )
    cfg = run_config(run_dir, list(overrides))
    require_finished(run_dir)
    task = TaskSpec.from_config(task_config(cfg))  # method=prompt-autowords: the searched words
    table = read_table(input_file, fmt)
    mapping = column_map(list(text_columns), task.text_fields, table)
    label = placeholder_label(task)
    examples = [
        Example(fields={f: row[c] for f, c in mapping.items()}, label=label) for row in table.rows
    ]
    log.info("%s: %d texts from %s", run_dir, len(examples), table.path)
    own = methods.hook(cfg.method, "predict")  # a method that is several models (PET)
    if own is not None:
        probs, predicted = own(cfg, run_dir, examples)
    else:
        check_predictable(run_dir, cfg)
        require_weights(cfg, run_dir)
        predictions = predict_examples(cfg, run_dir, examples, progress)
        probs = None if task.regression else predictions.probs()
        predicted = (
            predictions.frame["score"].to_numpy()
            if task.regression
            else predictions.frame["pred"].to_numpy()
        )
    frame = labelled(table, task, probs, predicted)
    write_file_atomic(out, _serialise(frame, out.suffix.lower()))
    return frame


def check_predictable(run_dir: Path, cfg) -> None:
    """A method with a runner of its own is applied by its ``predict`` hook (run/methods.py), or,
    with a ``builder`` (its one model rebuilt as evaluate rebuilds it: SetFit), as any single model."""
    from fewtune.run import methods

    if methods.hook(cfg.method, "runner") is not None and not cfg.method.get("builder"):
        raise FewtuneError(
            f"{run_dir} is a method={cfg.method.name} run made by the method's own runner, which names "
            "no predict hook (conf/method/<name>.yaml: predict: module.function); predict cannot apply it"
        )


def labelled(table, task, probs, predicted) -> pd.DataFrame:
    """The input's columns, then the prediction's."""
    frame = pd.DataFrame(table.rows, columns=table.columns)
    if task.regression:
        low, high = task.score_range
        frame["predicted_score"] = low + predicted.astype(float) * (high - low)
        return frame
    words = {label: w if isinstance(w, str) else w[0] for label, w in task.verbalizer.items()}
    frame["predicted_label"] = [task.labels[i] for i in predicted]
    frame["predicted_word"] = [words[label] for label in frame["predicted_label"]]
    for i, label in enumerate(task.labels):
        frame[f"prob_{label}"] = probs[:, i]
    return frame


def _serialise(frame: pd.DataFrame, suffix: str) -> str | bytes:
    if suffix == ".parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    if suffix == ".jsonl":
        return "".join(
            json.dumps(row, ensure_ascii=False) + "\n" for row in frame.to_dict(orient="records")
        )
    return frame.to_csv(
        index=False,
        sep="\t" if suffix == ".tsv" else ",",
        quoting=csv.QUOTE_MINIMAL,
        lineterminator="\n",
    )


VALUED_OPTIONS = ("--input", "--out", "--text-column", "--format", "--progress")


def overrides_first(argv: list[str]) -> list[str]:
    """The run folder and its key=value overrides before the options, wherever they were given:
    argparse reads positionals in one run (``--text-column sentence=review`` is an option's value)."""
    positional, options = [], []
    for i, arg in enumerate(argv):
        is_value = i > 0 and argv[i - 1] in VALUED_OPTIONS
        (options if arg.startswith("-") or is_value else positional).append(arg)
    return positional + options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fewtune.predict", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="the output folder of a finished run")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's config")
    parser.add_argument(
        "--input",
        required=True,
        type=Path,
        help="texts to label: .csv, .tsv (header line) or .jsonl",
    )
    parser.add_argument(
        "--out", required=True, type=Path, help="the labelled rows: .csv, .tsv, .jsonl or .parquet"
    )
    parser.add_argument("--text-column", action="append", default=[], metavar="[FIELD=]COLUMN",
                        help="the column of each template field, in the task's order or as FIELD=COLUMN")  # fmt: skip
    parser.add_argument(
        "--format", choices=["csv", "tsv", "jsonl"], help="the input's format (default: its suffix)"
    )
    parser.add_argument("--progress", choices=["auto", "rich", "log", "none"], default="auto")
    args = parser.parse_args(overrides_first(sys.argv[1:] if argv is None else list(argv)))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with saved_run_errors(args.overrides):
        frame = predict(
            args.run_dir,
            args.input,
            args.out,
            args.text_column,
            args.overrides,
            args.format,
            args.progress,
        )
    counts = (
        frame["predicted_label"].value_counts().sort_index().to_dict()
        if "predicted_label" in frame
        else {}
    )
    summary = ", ".join(f"{label}: {n}" for label, n in counts.items())
    print(
        f"{len(frame)} rows labelled into {args.out}" + (f" ({summary})" if summary else ""),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
