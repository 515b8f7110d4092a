"""A split's per-example predictions as one Parquet file, written atomically.

One row per example, sorted by ``index`` (the example's line in its split's file, from 0):

    index      the example's position in its split's file
    gold       the label's index (classification), or the score scaled to [0, 1] (regression)
    pred       the predicted label's index (classification)
    prob_<L>   the probability of label L, one column per label (classification)
    score      the predicted score in [0, 1] (regression: STS-B's 5 * score on its own scale)
    exit_layer the layer the example left the model after (early exit with a rule only)
    batch      the evaluation batch the example was in, and
    order      its position in the evaluation: re-scoring replays the batches in this order, so
               that metrics that accumulate batch by batch (Pearson) come out bit-identical.

The file's metadata (key ``fewtune``, JSON) says what the numbers mean: the task, the split and
its file, the metric, the labels and their label words, or the score range.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_file_atomic

FOLDER = "predictions"
SPLITS = ("dev", "test")
META_KEY = b"fewtune"
PROB = "prob_"


def path_of(run_dir: str | Path, split: str, prefix: str = "") -> Path:
    """``<run>/predictions/<prefix><split>.parquet`` (PET's ensemble: prefix ``ensemble-``)."""
    return Path(run_dir) / FOLDER / f"{prefix}{split}.parquet"


def task_meta(task, split_file: str = "", label_words=None) -> dict[str, Any]:
    """What a file's numbers mean, from a ``TaskSpec``; ``label_words``: another verbalizer's (a PET pattern's)."""
    words = dict(label_words or task.verbalizer)
    return {
        "task": task.name,
        "split_file": split_file,
        "metric": task.metric,
        "regression": task.regression,
        "labels": list(task.labels),
        "label_words": {str(k): (v if isinstance(v, str) else list(v)) for k, v in words.items()},
        "score_range": list(task.score_range) if task.score_range else None,
    }


@dataclass
class Predictions:
    frame: pd.DataFrame  # the columns above, sorted by index
    meta: dict[str, Any]  # task_meta plus "split"

    @property
    def regression(self) -> bool:
        return bool(self.meta["regression"])

    @property
    def labels(self) -> list[str]:
        return list(self.meta["labels"])

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    @property
    def prob_columns(self) -> list[str]:
        return [PROB + label for label in self.labels]

    def probs(self) -> np.ndarray:
        """[examples, labels] (classification)."""
        return self.frame[self.prob_columns].to_numpy(np.float32)

    def outputs(self) -> np.ndarray:
        """What an ensemble averages: the label probabilities, or the score."""
        return (
            self.frame["score"].to_numpy(np.float32)[:, None] if self.regression else self.probs()
        )

    @classmethod
    def build(cls, meta: dict, index, gold, *, probs=None, pred=None, score=None, batch=None, order=None,
              exit_layer=None) -> Predictions:  # fmt: skip
        """From arrays in evaluation order; ``batch`` and ``order`` default to one batch in the given order."""
        n = len(index)
        columns: dict[str, Any] = {"index": np.asarray(index, np.int32)}
        if meta["regression"]:
            columns["gold"] = np.asarray(gold, np.float32)
            columns["score"] = np.asarray(score, np.float32)
        else:
            probs = np.asarray(probs, np.float32)
            columns["gold"] = np.asarray(gold, np.int32)
            columns["pred"] = np.asarray(probs.argmax(-1) if pred is None else pred, np.int32)
            columns.update({PROB + label: probs[:, i] for i, label in enumerate(meta["labels"])})
        if exit_layer is not None:
            columns["exit_layer"] = np.asarray(exit_layer, np.int16)
        columns["batch"] = np.zeros(n, np.int32) if batch is None else np.asarray(batch, np.int32)
        columns["order"] = (
            np.arange(n, dtype=np.int32) if order is None else np.asarray(order, np.int32)
        )
        frame = pd.DataFrame(columns).sort_values("index", kind="stable").reset_index(drop=True)
        return cls(frame, dict(meta))

    def write(self, path: str | Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        # Only our metadata (pandas' own is larger than the numbers); and encodings that suit each
        # column: index and order delta-coded, the floats byte-split, labels as dictionaries.
        # SST-2's 872 test rows: about 10 KB instead of 18 KB.
        table = table.replace_schema_metadata({META_KEY: json.dumps(self.meta)})
        encodings = {name: "DELTA_BINARY_PACKED" for name in ("index", "order")}
        encodings.update(
            {
                name: "BYTE_STREAM_SPLIT"
                for name in table.column_names
                if name.startswith(PROB) or name == "score"
            }
        )
        dictionary = [name for name in table.column_names if name not in encodings]
        buffer = io.BytesIO()
        pq.write_table(
            table, buffer, compression="zstd", use_dictionary=dictionary, column_encoding=encodings
        )
        write_file_atomic(path, buffer.getvalue())
        return Path(path)


def read(path: str | Path) -> Predictions:
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FewtuneError(
            f"{path} is missing: the run stored no predictions (made before they were stored?)"
        )
    table = pq.read_table(path)
    meta = (table.schema.metadata or {}).get(META_KEY)
    if meta is None:
        raise FewtuneError(
            f"{path} is not a fewtune predictions file (no '{META_KEY.decode()}' metadata)"
        )
    return Predictions(table.to_pandas(), json.loads(meta))


def read_run(run_dir: str | Path, split: str = "test", prefix: str = "") -> Predictions:
    return read(path_of(run_dir, split, prefix))


def prefix_of(run) -> str:
    """Which of a run folder's files a table row (fewtune.table.Run) scores: PET's ensemble row, ensemble-."""
    return getattr(run, "predictions_prefix", "")


def has_predictions(run_dir: str | Path, split: str = "test", prefix: str = "") -> bool:
    return path_of(run_dir, split, prefix).is_file()
