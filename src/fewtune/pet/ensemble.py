"""Combining the patterns' predictions (PET, Schick and Schütze 2021), and scoring predictions.

Every function takes the patterns' label logits stacked as [patterns, examples, labels] (each
model's class scores, as its ``label_logits`` gives them) and one weight per pattern:
``mean`` weighs every pattern 1, ``weighted`` by its dev accuracy before training.

- the ensemble's prediction: the weighted mean of the patterns' label probabilities;
- the soft labels that distillation trains on: PET's softmax with temperature T (2) over the
  weighted mean of the patterns' label logits.
"""

from __future__ import annotations

import logging

import torch

from fewtune.run.metrics import build_metrics, to_floats

log = logging.getLogger("fewtune")


def pattern_weights(kind: str, dev_accuracy_before: list[float]) -> torch.Tensor:
    """One weight per pattern: 1 each (``mean``), or the dev accuracy before training (``weighted``)."""
    if kind == "mean":
        return torch.ones(len(dev_accuracy_before))
    weights = torch.tensor(dev_accuracy_before, dtype=torch.float)
    if weights.sum() <= 0:  # no pattern got a dev example right: nothing to weigh by
        log.warning("PET: every pattern has dev accuracy 0 before training; weighing them equally")
        return torch.ones(len(dev_accuracy_before))
    return weights


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    weights = weights.to(values).view(-1, *([1] * (values.dim() - 1)))
    return (weights * values).sum(0) / weights.sum()


def ensemble_probs(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[examples, labels]: the weighted mean of the patterns' label probabilities."""
    return _weighted_mean(logits.float().softmax(-1), weights)


def soft_labels(logits: torch.Tensor, weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """[examples, labels]: softmax(weighted mean of the patterns' label logits / temperature), PET's targets."""
    return (_weighted_mean(logits.float(), weights) / temperature).softmax(-1)


def accuracy(scores: torch.Tensor, targets: list[int]) -> float:
    return float((scores.argmax(-1) == torch.tensor(targets)).float().mean()) if targets else 0.0


def task_metrics(scores: torch.Tensor, targets: list[int], metric: str) -> dict[str, float]:
    """The task's metrics (as metrics.json's "test" holds them) of label scores or probabilities."""
    metrics = build_metrics(metric, scores.size(-1), prefix="")
    metrics.update(scores.float(), torch.tensor(targets))
    return to_floats(metrics.compute())
