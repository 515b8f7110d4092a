"""A run's predictions on disk and in W&B: ``predictions/dev.parquet`` and ``test.parquet``
(written before metrics.json, so that a complete run has them), and the same rows as
``wandb.Table``s ("predictions/dev", "predictions/test") where a W&B logger is configured."""

from __future__ import annotations

from pathlib import Path

from fewtune.predictions.store import SPLITS, Predictions, path_of, task_meta


def write_run_predictions(
    out: str | Path, recorder, datamodule, prefix: str = ""
) -> dict[str, Predictions]:
    """The recorder's dev and test predictions, written under ``out``; {split: predictions}."""
    written = {}
    for split in SPLITS:
        meta = task_meta(datamodule.task, _split_file(datamodule, split))
        predictions = recorder.predictions(split, meta)
        if predictions is not None:
            predictions.write(path_of(out, split, prefix))
            written[split] = predictions
    return written


def _split_file(datamodule, split: str) -> str:
    """The file the phase read, relative to the data folder where it lies below it."""
    source = datamodule.sources[split]
    path = datamodule.task.split_path(source, datamodule.folder, datamodule.data_dir)
    try:
        return str(Path(path).relative_to(datamodule.data_dir))
    except ValueError:
        return str(path)


def readable_frame(predictions: Predictions):
    """The rows with the label names beside their indices: for a W&B table."""
    frame = predictions.frame.copy()
    if not predictions.regression:
        labels = predictions.labels
        frame.insert(2, "gold_label", [labels[i] for i in frame["gold"]])
        frame.insert(4, "pred_label", [labels[i] for i in frame["pred"]])
    return frame


def log_predictions(loggers: list, predictions: dict[str, Predictions], prefix: str = "") -> None:
    """Each split's rows as a table, to the loggers that take tables (W&B's)."""
    for logger in loggers:
        if not hasattr(logger, "log_table"):  # the CSV logger has no tables
            continue
        for split, preds in predictions.items():
            logger.log_table(key=f"predictions/{prefix}{split}", dataframe=readable_frame(preds))
