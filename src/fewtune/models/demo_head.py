"""Prompt-based scoring with demonstrations: one prediction from several demonstration sets.

A dev or test batch holds ``sets`` rows per example (the same query with different
demonstrations, data/demo_datamodule.py). ``average_sets`` turns them into one row of label
logits: by default the log of the mean label-word probability, so that a softmax, an argmax or
a regression score of the result is that of the averaged probabilities; ``average=logits``
averages the raw label-word logits instead, as LM-BFF's code does.

With contextual calibration (``batch["p_cf"]``, one per row: its demonstration set's,
fewtune/scoring/calibration.py) each row's probabilities are calibrated first, then averaged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fewtune.models.prompt_head import PromptModule


def average_sets(logits: torch.Tensor, sets: int, average: str = "probs") -> torch.Tensor:
    """[examples * sets, labels] -> [examples, labels]; the rows of an example are consecutive."""
    if sets == 1:
        return logits
    grouped = logits.float().view(-1, sets, logits.size(-1))
    if average == "logits":
        return grouped.mean(1)
    return grouped.log_softmax(-1).logsumexp(1) - math.log(sets)


class DemoPromptModule(PromptModule):
    def __init__(self, model: nn.Module, label_words, average: str = "probs", **kwargs):
        super().__init__(model, label_words, **kwargs)
        self.average = average

    def label_logits(self, batch: dict[str, torch.Tensor], word_ids=None) -> torch.Tensor:
        logits = super().label_logits(batch, word_ids)
        if word_ids is None and "p_cf" in batch:
            from fewtune.scoring.calibration import calibrate

            # each set calibrated by its own p_cf; the log keeps softmax and argmax those of the calibrated probs
            logits = calibrate(logits.float().softmax(-1), batch["p_cf"].to(logits.device)).log()
        return average_sets(logits, batch.get("sets", 1), self.average)
