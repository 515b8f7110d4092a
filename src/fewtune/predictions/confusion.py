"""Confusion matrices beside a table: one PNG per task and row (method, backbone, K), the test
predictions of the row's chosen run of every seed counted together (scikit-learn's matrix and
display), rows the gold label, columns the predicted one, each label shown by its label word."""

from __future__ import annotations

import io
import os
import re
import sys
from pathlib import Path

import numpy as np

from fewtune.jobs.atomic import write_file_atomic
from fewtune.predictions.store import has_predictions, prefix_of, read_run

FOLDER = "confusion"


def write_confusion_matrices(table, chosen: dict, out: Path) -> list[Path]:
    """The PNGs written under ``out/confusion/``, for classification columns with stored predictions."""
    written = []
    for row in table.rows:
        if row.paper:
            continue
        for task in table.tasks:
            runs = [run for key, run in sorted(chosen.items(), key=lambda kv: kv[0][-1])
                    if key[:4] == (row.method, row.model, int(row.k), task)
                    and has_predictions(run.path, "test", prefix_of(run))]  # fmt: skip
            if runs:
                path = _draw(
                    runs,
                    f"{table.titles[task]}: {row.title} ({row.model}, K={row.k})",
                    out,
                    task,
                    row,
                )
                if path is not None:
                    written.append(path)
    return written


def _draw(runs: list, title: str, out: Path, task: str, row) -> Path | None:
    import matplotlib

    if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # a script or the CLI: never open a window
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    predictions = [read_run(run.path, "test", prefix_of(run)) for run in runs]
    if predictions[0].regression:
        return None
    labels = predictions[0].labels
    words = predictions[0].meta.get("label_words") or {}
    names = [_word(words.get(label, label)) for label in labels]
    counts = sum(
        confusion_matrix(p.frame["gold"], p.frame["pred"], labels=range(len(labels)))
        for p in predictions
    )
    figure, axes = plt.subplots(figsize=(2.2 + 0.9 * len(labels), 1.8 + 0.9 * len(labels)))
    ConfusionMatrixDisplay(np.asarray(counts), display_labels=names).plot(
        ax=axes, colorbar=False, cmap="Blues"
    )
    seeds = f"{len(predictions)} seed{'s' if len(predictions) > 1 else ''}"
    axes.set_title(f"{title}\n{seeds}, {int(counts.sum())} test predictions", fontsize=9)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    plt.setp(axes.get_xticklabels(), rotation=30, ha="right")
    figure.tight_layout()
    path = out / FOLDER / f"{_slug(task)}_{_slug(row.method)}_{_slug(row.model)}_k{row.k}.png"
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    write_file_atomic(path, buffer.getvalue())
    return path


def _word(words) -> str:
    return words if isinstance(words, str) else "/".join(words)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(text)).strip("-")
