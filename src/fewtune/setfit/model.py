"""SetFit's model: the backbone's body, its pooling, and a linear head over the embeddings.

``SentenceModel`` holds the body as ``base_model`` and the head beside it, as transformers'
models do, so that peft (models/prompt_head.split_lm, peft/freezing.py) sees the head as the
new classifier head and the body as what LoRA / BitFit / head-only act on. ``SetFitModule`` is
the LightningModule of the differentiable head's training and of every dev and test
evaluation (the logistic head's coefficients are loaded into the same linear layer).
"""

from __future__ import annotations

import torch
from torch import nn

from fewtune.models.base import FewShotModule
from fewtune.models.pooling import Pooling
from fewtune.setfit.settings import SetFitSettings


class SentenceModel(nn.Module):
    def __init__(self, body: nn.Module, pooling: Pooling, num_labels: int):
        super().__init__()
        self.body = body
        self.pooling = pooling
        self.head = nn.Linear(body.config.hidden_size, num_labels)
        # as the library's SetFitHead starts
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.constant_(self.head.bias, 1e-2)

    @property
    def base_model(self) -> nn.Module:
        return self.body

    @property
    def config(self):
        return self.body.config

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask)[0]
        return self.pooling(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        embeddings = self.embed(input_ids, attention_mask)
        return self.head(embeddings.to(self.head.weight.dtype))

    def body_parameters(self) -> list[nn.Parameter]:
        return list(self.body.parameters())


class SetFitModule(FewShotModule):
    """Label logits = head(embedding); trains the differentiable head (and the body, end to end)."""

    def __init__(self, model: SentenceModel, num_labels: int, settings: SetFitSettings, **kwargs):
        super().__init__(num_labels=num_labels, pack_training=False, **kwargs)
        self.model = model
        self.settings = settings

    def label_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(batch["input_ids"], batch["attention_mask"])

    def configure_optimizers(self):
        """As the library's differentiable head: AdamW with weight decay, the head at head_lr and
        (end to end) the body at head_body_lr, the rate halved every 5 epochs."""
        s = self.settings
        head = list(self.model.head.parameters())
        body = [p for p in self.model.body_parameters() if p.requires_grad]
        groups = [{"params": head, "lr": s.head_lr}]
        if body:
            groups.append({"params": body, "lr": s.head_body_lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=s.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }
