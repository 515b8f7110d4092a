"""The task's metrics from stored predictions, computed as the run computed them.

The same torchmetrics collection (fewtune/metrics.py) is given the same batches in the same
order, so a run's ``metrics.json`` "test" comes back exactly: the classification metrics count
the predicted labels (the argmax of the logits the run scored), Pearson accumulates its sums
batch by batch as during the test. Early exit adds ``exit_layers``, the mean layer of exit.
Under DDP the processes' batches are replayed one after another: classification metrics are
still exact, a regression metric may differ in the last digits.
"""

from __future__ import annotations

import torch

from fewtune.predictions.store import Predictions
from fewtune.run.metrics import build_metrics, to_floats


def rescore(predictions: Predictions) -> dict[str, float]:
    """{metric name: value}, as metrics.json's "test" (or a dev metric) holds them."""
    frame = predictions.frame.sort_values("order", kind="stable")
    num_labels = max(len(predictions.labels), 1)
    metrics = build_metrics(predictions.metric, num_labels, prefix="")
    for _, rows in frame.groupby("batch", sort=False):  # the batches in evaluation order
        metrics.update(*_batch(predictions, rows))
    out = to_floats(metrics.compute())
    if "exit_layer" in frame:
        out["exit_layers"] = float(
            torch.tensor(frame["exit_layer"].to_numpy(), dtype=torch.long).float().mean()
        )
    return out


def _batch(predictions: Predictions, rows) -> tuple[torch.Tensor, torch.Tensor]:
    if predictions.regression:
        return torch.tensor(rows["score"].to_numpy()), torch.tensor(rows["gold"].to_numpy())
    # label indices as the run's batches held them (int64)
    return torch.tensor(rows["pred"].to_numpy(), dtype=torch.long), torch.tensor(
        rows["gold"].to_numpy(), dtype=torch.long
    )


def metric_value(predictions: Predictions) -> float:
    """The task's own metric (e.g. acc, mcc, pearson) of the predictions."""
    return rescore(predictions)[predictions.metric]
