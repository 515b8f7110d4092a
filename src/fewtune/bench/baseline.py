"""The baseline: how a user of plain transformers would write evaluation and a training step.

Full-vocabulary logits at every position (or the sequence-classification head), float32,
padding to the longest in fixed-order batches of 32, then the slot's logits. It uses the
same token ids as fewtune, so both must predict the same labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewtune.data.datamodule import Collator
from fewtune.data.encoding import Encoded


def baseline_label_logits(model, batch: dict, label_word_ids: list[int] | None) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    if label_word_ids is None:  # classifier head
        return out
    rows = torch.arange(out.size(0), device=out.device)
    return out[rows, batch["slot"]][:, label_word_ids]


def to_device(batch: dict, device: str) -> dict:
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}


@torch.no_grad()
def evaluate(
    model, items: list[Encoded], pad_id: int, label_word_ids, batch_size: int = 32, device: str = "cpu"
) -> torch.Tensor:
    """Label logits of every item, in the given (file) order."""
    model.eval()
    collate = Collator(pad_id)
    chunks = [
        baseline_label_logits(model, to_device(collate(items[i : i + batch_size]), device), label_word_ids).cpu()
        for i in range(0, len(items), batch_size)
    ]
    return torch.cat(chunks)


def train_step(model, optimizer, batch: dict, label_word_ids, device: str = "cpu") -> float:
    model.train()
    batch = to_device(batch, device)
    loss = F.cross_entropy(baseline_label_logits(model, batch, label_word_ids), batch["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return float(loss)
