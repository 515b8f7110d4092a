"""SetFit's contrastive pairs from the K-shot training set, drawn as the setfit library draws them.

Every pair (i, j) with i <= j (an example with itself too) in a shuffled order; a pair is
positive (target cosine similarity 1) when both examples have the same label, else negative
(target 0). ``num_iterations`` asks for iterations x examples positives and as many negatives,
taken in that order and cycled where there are fewer; the two kinds alternate, so the
set is balanced. Without it, ``sampling`` sizes each kind: oversampling (the larger kind's
count), undersampling (the smaller's) or unique (each pair once). The library shuffles with a
fixed seed (42); here the run's seed shuffles, so that seeds differ in their pairs too.
"""

from __future__ import annotations

from itertools import cycle, islice, zip_longest

import numpy as np

from fewtune.errors import FewtuneError

Pair = tuple[int, int, float]  # (example index, example index, target cosine similarity)


def contrastive_pairs(
    labels: list, num_iterations: int | None, sampling: str, seed: int
) -> list[Pair]:
    n = len(labels)
    combinations = np.stack(np.triu_indices(n, 0), axis=-1)
    positives, negatives = [], []
    for i, j in combinations[np.random.RandomState(seed).permutation(len(combinations))].tolist():
        (positives if labels[i] == labels[j] else negatives).append((i, j))
    if not negatives:
        raise FewtuneError(
            "SetFit's pairs need examples of at least two labels in the training set"
        )
    if num_iterations is not None:
        n_pos = n_neg = num_iterations * n
    elif sampling == "unique":
        n_pos, n_neg = len(positives), len(negatives)
    elif sampling == "undersampling":
        n_pos = n_neg = min(len(positives), len(negatives))
    else:  # oversampling
        n_pos = n_neg = max(len(positives), len(negatives))
    chosen_pos = [(i, j, 1.0) for i, j in islice(cycle(positives), n_pos)]
    chosen_neg = [(i, j, 0.0) for i, j in islice(cycle(negatives), n_neg)]
    return [
        pair for both in zip_longest(chosen_pos, chosen_neg) for pair in both if pair is not None
    ]
