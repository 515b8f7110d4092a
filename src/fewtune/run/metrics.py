"""Task metrics from torchmetrics, named as in the task configs (acc, mcc, f1; pearson, spearman)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
)
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

from fewtune.errors import FewtuneError

METRICS = {
    "acc": lambda n: MulticlassAccuracy(num_classes=n, average="micro"),
    "mcc": lambda n: MulticlassMatthewsCorrCoef(num_classes=n),
    # F1 of the positive class (label index 1), as GLUE reports it for MRPC and QQP.
    "f1": lambda n: MulticlassF1Score(num_classes=n, average=None),
}
# Metrics of a predicted score (STS-B); a regression run reports both, as GLUE does.
REGRESSION_METRICS = {"pearson": PearsonCorrCoef, "spearman": SpearmanCorrCoef}


def check_metric(metric: str, regression: bool, where: str = "") -> None:
    """A task's metric must exist and fit its kind (class labels or a score)."""
    prefix = f"{where}: " if where else ""
    known = REGRESSION_METRICS if regression else METRICS
    if metric in known:
        return
    if metric in METRICS or metric in REGRESSION_METRICS:
        kind = "a regression task (a score)" if regression else "a classification task"
        raise FewtuneError(
            f"{prefix}metric '{metric}' does not apply to {kind}; use one of {sorted(known)}"
        )
    raise FewtuneError(f"{prefix}metric '{metric}' is unknown; use one of {sorted(known)}")


def build_metrics(primary: str, num_classes: int, prefix: str) -> MetricCollection:
    """The task's metric, plus accuracy, which every classification run reports."""
    if primary in REGRESSION_METRICS:
        names = dict.fromkeys([primary, *REGRESSION_METRICS])
        return MetricCollection({name: REGRESSION_METRICS[name]() for name in names}, prefix=prefix)
    if primary not in METRICS:
        raise FewtuneError(
            f"metric '{primary}' is unknown; use one of {sorted([*METRICS, *REGRESSION_METRICS])}"
        )
    names = dict.fromkeys([primary, "acc"])
    return MetricCollection({name: METRICS[name](num_classes) for name in names}, prefix=prefix)


def to_floats(values: dict) -> dict[str, float]:
    out = {}
    for name, value in values.items():
        # Per-class F1: report the positive class.
        out[name] = float(value[1] if value.ndim and value.numel() > 1 else value)
    return out
