"""Similarity of sentence embeddings, for choosing similar demonstrations (LM-BFF uses
Sentence-BERT): the cosine. The encoder that embeds them is models/sentence_encoder.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Embed = Callable[[list[str]], torch.Tensor]


def cosine(queries: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """[queries, pool] cosine similarities."""
    return F.normalize(queries.float(), dim=-1) @ F.normalize(pool.float(), dim=-1).T
