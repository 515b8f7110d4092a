"""Task metrics from torchmetrics, named as in the task configs (acc, mcc, f1)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassMatthewsCorrCoef

from fewtune.errors import FewtuneError

METRICS = {
    "acc": lambda n: MulticlassAccuracy(num_classes=n, average="micro"),
    "mcc": lambda n: MulticlassMatthewsCorrCoef(num_classes=n),
    # F1 of the positive class (label index 1), as GLUE reports it for MRPC and QQP.
    "f1": lambda n: MulticlassF1Score(num_classes=n, average=None),
}


def build_metrics(primary: str, num_classes: int, prefix: str) -> MetricCollection:
    """The task's metric, plus accuracy, which every run reports."""
    if primary not in METRICS:
        raise FewtuneError(f"metric '{primary}' is unknown; use one of {sorted(METRICS)}")
    names = dict.fromkeys([primary, "acc"])
    return MetricCollection({name: METRICS[name](num_classes) for name in names}, prefix=prefix)


def to_floats(values: dict) -> dict[str, float]:
    out = {}
    for name, value in values.items():
        # Per-class F1: report the positive class.
        out[name] = float(value[1] if value.ndim and value.numel() > 1 else value)
    return out
