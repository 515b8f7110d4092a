"""SetFit's first phase: the body learns from pairs that examples of one label embed close
together and examples of different labels apart (sentence-transformers' CosineSimilarityLoss:
the squared error between the pair's cosine similarity and its target, 1 or 0).

The optimisation is the library's (sentence-transformers' trainer): AdamW with weight decay
except on biases and norms, a linear schedule with warm-up, shuffled pairs.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fewtune.data.datamodule import Collator
from fewtune.data.encoding import Encoded
from fewtune.setfit.model import SentenceModel
from fewtune.setfit.pairs import Pair


class PairCollator:
    """A batch of pairs as one padded batch: the first examples, then the second ones, padded as
    the datamodule pads a training batch (to its length ladder)."""

    def __init__(self, encoded: list[Encoded], collate: Collator):
        self.encoded = encoded
        self.collate = collate

    def __call__(self, pairs: list[Pair]) -> dict[str, torch.Tensor]:
        items = [self.encoded[i] for i, _, _ in pairs] + [self.encoded[j] for _, j, _ in pairs]
        batch = self.collate(items)
        batch["targets"] = torch.tensor([target for _, _, target in pairs])
        return batch


def pair_loader(
    pairs: list[Pair], encoded: list[Encoded], collate: Collator, batch_size: int
) -> DataLoader:
    return DataLoader(
        pairs, batch_size=batch_size, shuffle=True, collate_fn=PairCollator(encoded, collate)
    )


def steps_for(pairs: int, batch_size: int, epochs: int) -> int:
    return math.ceil(pairs / batch_size) * epochs


def no_decay(model: torch.nn.Module) -> set[int]:
    """Biases and norm weights: no weight decay, as transformers' Trainer leaves them."""
    skipped = set()
    for module in model.modules():
        norm = "norm" in type(module).__name__.lower()
        for name, p in module.named_parameters(recurse=False):
            if norm or name == "bias":
                skipped.add(id(p))
    return skipped


class ContrastiveModule(pl.LightningModule):
    def __init__(
        self,
        model: SentenceModel,
        lr: float,
        weight_decay: float,
        warmup_proportion: float,
        total_steps: int,
    ):
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_proportion = warmup_proportion
        self.total_steps = total_steps

    def setup(self, stage: str) -> None:
        self.train()  # from_pretrained returns the body in eval mode; the library trains with dropout

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        embeddings = self.model.embed(batch["input_ids"], batch["attention_mask"]).float()
        n = len(batch["targets"])
        similarity = F.cosine_similarity(embeddings[:n], embeddings[n:])
        loss = F.mse_loss(similarity, batch["targets"].float())
        self.log("train/pair_loss", loss, prog_bar=True, batch_size=n)
        return loss

    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        trainable = [p for p in self.model.body_parameters() if p.requires_grad]
        skipped = no_decay(self.model.body)
        groups = [
            {
                "params": [p for p in trainable if id(p) not in skipped],
                "weight_decay": self.weight_decay,
            },
            {"params": [p for p in trainable if id(p) in skipped], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=self.lr)
        warmup = math.ceil(self.warmup_proportion * self.total_steps)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, self.total_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
