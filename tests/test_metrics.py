"""The task metrics give the textbook values."""

import math

import pytest
import torch

from fewtune.errors import FewtuneError
from fewtune.run.metrics import build_metrics, to_floats


def logits_for(preds, num_classes):
    return torch.nn.functional.one_hot(torch.tensor(preds), num_classes).float()


def test_accuracy():
    m = build_metrics("acc", 2, prefix="test/")
    m.update(logits_for([1, 0, 1, 1], 2), torch.tensor([1, 0, 0, 1]))
    assert to_floats(m.compute()) == {"test/acc": 0.75}


def test_matthews_correlation_and_accuracy_for_cola():
    preds, labels = [1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]
    m = build_metrics("mcc", 2, prefix="val/")
    m.update(logits_for(preds, 2), torch.tensor(labels))
    values = to_floats(m.compute())
    tp, tn, fp, fn = 2, 2, 1, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert values["val/mcc"] == pytest.approx(expected)
    assert values["val/acc"] == pytest.approx(4 / 6)


def test_f1_is_the_positive_class():
    m = build_metrics("f1", 2, prefix="test/")
    m.update(logits_for([1, 1, 0, 0], 2), torch.tensor([1, 0, 1, 0]))
    assert to_floats(m.compute())["test/f1"] == pytest.approx(0.5)


def test_unknown_metric():
    with pytest.raises(FewtuneError, match="metric 'bleu' is unknown"):
        build_metrics("bleu", 2, prefix="x/")
