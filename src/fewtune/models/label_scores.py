"""Class scores from word scores: a class with several label words (PET-style verbalizers)
scores the mean (PET) or the max of its words' scores."""

from __future__ import annotations

import torch

from fewtune.data.verbalizers import LabelWords


def grouping(words: LabelWords, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """([classes, most words] index into the word scores, [classes, most words] True where real)."""
    width = max(len(ws) for ws in words.tokens)
    index = torch.zeros(words.num_classes, width, dtype=torch.long)
    valid = torch.zeros(words.num_classes, width, dtype=torch.bool)
    start = 0
    for c, ws in enumerate(words.tokens):
        index[c, : len(ws)] = torch.arange(start, start + len(ws))
        valid[c, : len(ws)] = True
        start += len(ws)
    return index.to(device), valid.to(device)


def class_scores(word_scores: torch.Tensor, words: LabelWords) -> torch.Tensor:
    """[batch, words] (class after class) -> [batch, classes]."""
    if words.one_word:
        return word_scores  # untouched: one word per class scores exactly as before
    index, valid = grouping(words, word_scores.device)
    grouped = word_scores[:, index]  # [batch, classes, most words]
    if words.reduce == "max":
        return grouped.masked_fill(~valid, float("-inf")).amax(-1)
    return grouped.masked_fill(~valid, 0).sum(-1) / valid.sum(-1)
