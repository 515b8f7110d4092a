"""Standard fine-tuning: a new classifier head on the backbone.

transformers' AutoModelForSequenceClassification pools the first token for encoders and
the last non-pad token for decoders. A regression task (STS-B) gets one output: the score.
"""

from __future__ import annotations

import torch
from torch import nn

from fewtune.models.base import FewShotModule


class ClassifierModule(FewShotModule):
    def __init__(self, model: nn.Module, num_labels: int, **kwargs):
        super().__init__(num_labels=num_labels, **kwargs)
        self.model = model

    def label_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
