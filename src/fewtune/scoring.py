"""The label words' probabilities at the slot, outside a Trainer: for zero-shot analysis,
contextual calibration and the prompts notebook."""

from __future__ import annotations

from typing import Sequence

import torch

from fewtune.data.datamodule import Collator
from fewtune.data.encoding import PromptEncoder
from fewtune.data.tasks import Example


@torch.no_grad()
def label_probs(module, encoder: PromptEncoder, examples: Sequence[Example], batch_size: int = 32) -> torch.Tensor:
    """[examples, labels]: softmax over the labels of their words' scores at the slot.

    ``encoder`` may render another template than the one ``module`` was built with: its own
    label words are scored.
    """
    collate = Collator(encoder.tokenizer.pad_token_id)
    modes = {m: m.training for m in module.modules()}  # module.train(True) would also wake the backbone's dropout
    module.eval()
    out = []
    try:
        for start in range(0, len(examples), batch_size):
            items = [encoder.encode(ex, 0) for ex in examples[start : start + batch_size]]
            batch = {name: t.to(module.device) for name, t in collate(items).items()}
            out.append(module.label_logits(batch, encoder.label_words).float().softmax(-1).cpu())
    finally:
        for m, training in modes.items():
            m.training = training
    return torch.cat(out) if out else torch.empty(0, encoder.num_classes)
