"""iPET (Schick and Schütze 2021, section 3.3), kept simple: in generation g (1, 2, ...) the model
of each pattern is trained again, from the pre-trained weights, on the K-shot training set plus
unlabeled examples labelled by the ensemble of the OTHER patterns' models of generation g - 1.

- size: the training set grows by ``factor`` each generation, so generation g adds
  ``len(K-shot train) * (factor**g - 1)`` labelled examples (at most the unlabeled set);
- labels: the ensemble's most probable label (hard labels, as iPET);
- choice: the added examples keep the K-shot training set's label shares; within a label, the
  examples the ensemble is most confident about come first (iPET draws them with probability
  proportional to that confidence; taking the most confident is the deterministic version).
  A label the ensemble predicts too rarely gets fewer examples.

iPET ensembles a random subset of the other models; here all of them are used.
"""

from __future__ import annotations

from collections import Counter

import torch

from fewtune.pet.ensemble import ensemble_probs


def added_size(train_size: int, factor: float, generation: int) -> int:
    """How many labelled examples generation ``generation`` adds to the K-shot training set."""
    return round(train_size * (factor**generation - 1))


def label_shares(targets: list[int], num_labels: int) -> list[float]:
    counts = Counter(targets)
    return [counts[c] / len(targets) for c in range(num_labels)]


def most_confident(probs: torch.Tensor, size: int, shares: list[float]) -> list[tuple[int, int]]:
    """(example index, label) pairs: per label ``round(size * share)`` of the examples the
    ensemble gives that label, most probable first."""
    confidence, labels = probs.max(-1)
    chosen = []
    for label, share in enumerate(shares):
        candidates = (labels == label).nonzero().flatten().tolist()
        candidates.sort(key=lambda i: -float(confidence[i]))
        chosen += [(i, label) for i in candidates[: round(size * share)]]
    return chosen


def labelled_by_others(
    unlabeled_logits: torch.Tensor,
    weights: torch.Tensor,
    pattern: int,
    size: int,
    shares: list[float],
) -> list[tuple[int, int]]:
    """The examples (index, label) that pattern ``pattern`` trains on next: labelled by the
    ensemble of every other pattern. ``unlabeled_logits``: [patterns, examples, labels]."""
    others = [p for p in range(unlabeled_logits.size(0)) if p != pattern]
    probs = ensemble_probs(unlabeled_logits[others], weights[others])
    return most_confident(probs, size, shares)
