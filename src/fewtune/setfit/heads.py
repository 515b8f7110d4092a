"""SetFit's second phase, the logistic head: scikit-learn's LogisticRegression on the trained
body's embeddings of the K-shot training examples (the library's default head), its
coefficients then copied into the model's linear head.

The copy predicts as scikit-learn does: the class with the largest decision value. A binary
regression has one coefficient vector w (decision w.x + b for class 1, against 0 for class 0),
so the head's rows are 0 and w.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from fewtune.setfit.model import SentenceModel


class Embedder(pl.LightningModule):
    """predict_step -> the embeddings, run by a Trainer (its precision, eval mode, no gradients)."""

    def __init__(self, model: SentenceModel):
        super().__init__()
        self.model = model

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.model.embed(batch["input_ids"], batch["attention_mask"]).float()


def embeddings(trainer: pl.Trainer, model: SentenceModel, loader: DataLoader) -> np.ndarray:
    batches = trainer.predict(Embedder(model), dataloaders=loader)
    return torch.cat(batches).cpu().numpy()


def fit_logistic(
    features: np.ndarray, labels: list[int], num_labels: int, c: float, max_iter: int, seed: int
):
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    classifier.fit(features, labels)
    return classifier


@torch.no_grad()
def load_into_head(head: torch.nn.Linear, classifier, num_labels: int) -> None:
    """Set ``head`` to predict as ``classifier`` (a fitted LogisticRegression) predicts."""
    classes = list(classifier.classes_)
    if classes != list(range(num_labels)):
        raise ValueError(
            f"the logistic head saw the classes {classes}, not all of 0..{num_labels - 1}"
        )
    coef = torch.as_tensor(classifier.coef_, dtype=head.weight.dtype)
    bias = torch.as_tensor(classifier.intercept_, dtype=head.bias.dtype)
    if num_labels == 2:
        coef = torch.cat([torch.zeros_like(coef), coef])
        bias = torch.cat([torch.zeros_like(bias), bias])
    head.weight.copy_(coef)
    head.bias.copy_(bias)
