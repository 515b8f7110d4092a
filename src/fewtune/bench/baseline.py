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
    return {
        key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()
    }


@torch.no_grad()
def evaluate(
    model,
    items: list[Encoded],
    pad_id: int,
    label_word_ids,
    batch_size: int = 32,
    device: str = "cpu",
):
    """Label logits of every item, in the given (file) order, and per-batch times."""
    from fewtune.bench.timeline import Timeline

    model.eval()
    collate = Collator(pad_id)
    timeline, chunks = Timeline(device), []
    for i in range(0, len(items), batch_size):
        timeline.start()
        batch = collate(items[i : i + batch_size])
        chunks.append(baseline_label_logits(model, to_device(batch, device), label_word_ids).cpu())
        timeline.stop(tuple(batch["input_ids"].shape), tokens=batch["attention_mask"].sum())
    return torch.cat(chunks), timeline


def train_step(model, optimizer, batch: dict, label_word_ids, device: str = "cpu") -> float:
    model.train()
    batch = to_device(batch, device)
    loss = F.cross_entropy(baseline_label_logits(model, batch, label_word_ids), batch["labels"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return float(loss)


def train_steps(model, optimizer, datamodule, label_word_ids, steps: int, device: str = "cpu"):
    """``steps`` steps on the data module's shuffled training batches padded to their longest
    (no length ladder: what a plain script does); per-step times."""
    from fewtune.bench.timeline import Timeline

    collate = Collator(datamodule.collate.pad_id)
    loader = torch.utils.data.DataLoader(
        datamodule.encoded["train"],
        batch_size=datamodule.batch_size,
        shuffle=True,
        collate_fn=collate,
    )
    timeline = Timeline(device)
    while len(timeline.times) < steps:
        for batch in loader:
            if len(timeline.times) == steps:
                break
            timeline.start()
            train_step(
                model, optimizer, batch, label_word_ids, device
            )  # its float(loss) waits for the GPU
            timeline.stop(tuple(batch["input_ids"].shape), tokens=batch["attention_mask"].sum())
    return timeline
