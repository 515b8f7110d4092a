"""Standard fine-tuning: a new classifier head on the backbone.

transformers' AutoModelForSequenceClassification pools the first token for encoders and
the last non-pad token for decoders. A regression task (STS-B) gets one output: the score.
A packed training batch (models/packing.py) pools the same tokens from the packed row: the
body's pooler on each first token where the body has one (BERT), else each last token, then
the model's head modules.
"""

from __future__ import annotations

import torch
from torch import nn

from fewtune.models.base import FewShotModule
from fewtune.models.packing import pack, packed_hidden
from fewtune.models.backbones import split_lm


class ClassifierModule(FewShotModule):
    def __init__(self, model: nn.Module, num_labels: int, **kwargs):
        super().__init__(num_labels=num_labels, **kwargs)
        self.model = model

    def label_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head_rows(batch)

    def padded_rows(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def packed_rows(self, batch: dict[str, torch.Tensor], how: str) -> torch.Tensor:
        body, head = split_lm(self.model)
        packed = pack(batch, self.lengths)
        hidden = packed_hidden(body, packed, how)
        pooler = getattr(body, "pooler", None)
        if pooler is not None:
            pooled = pooler(hidden[packed.starts].unsqueeze(1))
        else:
            pooled = hidden[packed.starts + packed.lengths - 1]
        for module in head:
            pooled = module(pooled)
        return pooled
