"""Standard fine-tuning: a new classifier head on the backbone.

transformers' AutoModelForSequenceClassification pools the first token for encoders and
the last non-pad token for decoders. A regression task (STS-B) gets one output: the score.
A packed training batch (models/packing.py) pools the same tokens from the packed row: the
body's pooler on each first token where the body has one (BERT), else each last token, then
the model's head modules.

``pooling`` (method.pooling, models/pooling.py) pools the body's states another way before the
head (a sentence encoder's mean); ``head_lr`` gives the new head a learning rate of its own:
a randomly initialised head barely moves at the backbone's 1e-5.
"""

from __future__ import annotations

import torch
from torch import nn

from fewtune.models.backbones import split_lm
from fewtune.models.base import FewShotModule
from fewtune.models.packing import pack, packed_hidden
from fewtune.models.pooling import Pooling


class ClassifierModule(FewShotModule):
    def __init__(
        self,
        model: nn.Module,
        num_labels: int,
        pooling: Pooling | None = None,
        head_lr: float | None = None,
        **kwargs,
    ):
        super().__init__(num_labels=num_labels, **kwargs)
        self.model = model
        self.pooling = pooling  # None: the transformers class's own
        self.head_lr = head_lr

    def label_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head_rows(batch)

    def padded_rows(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.pooling is None:
            return self.model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).logits
        body, _ = split_lm(self.model)
        hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        return self.apply_head(self.pooling(hidden, batch["attention_mask"]))

    def packed_rows(self, batch: dict[str, torch.Tensor], how: str) -> torch.Tensor:
        body, head = split_lm(self.model)
        packed = pack(batch, self.lengths)
        hidden = packed_hidden(body, packed, how)
        if self.pooling is not None:
            return self.apply_head(self.pooling.packed(hidden, packed.starts, packed.lengths))
        pooler = getattr(body, "pooler", None)
        if pooler is not None:
            pooled = pooler(hidden[packed.starts].unsqueeze(1))
        else:
            pooled = hidden[packed.starts + packed.lengths - 1]
        for module in head:
            pooled = module(pooled)
        return pooled

    def apply_head(self, pooled: torch.Tensor) -> torch.Tensor:
        """The model's head modules on one vector per example. They get it as a one-token
        sequence: RoBERTa's head reads its first token itself, BERT's and Llama's keep the axis."""
        out = pooled.unsqueeze(1)
        for module in split_lm(self.model)[1]:
            out = module(out)
        return out[:, 0] if out.dim() == 3 else out

    def trainable_groups(self) -> list:
        if self.head_lr is None:
            return super().trainable_groups()
        from fewtune.peft.freezing import head_parameters

        head = {id(p) for p in head_parameters(self.model)}
        trainable = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in trainable if id(p) not in head]},
            {"params": [p for p in trainable if id(p) in head], "lr": self.head_lr},
        ]
        return [group for group in groups if group["params"]]
