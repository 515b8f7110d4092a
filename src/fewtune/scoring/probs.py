"""The label words' probabilities at the slot, outside a Trainer: for zero-shot analysis,
contextual calibration and the prompts notebook."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fewtune.data.datamodule import Collator
from fewtune.data.encoding import Encoded, PromptEncoder
from fewtune.data.lengths import LengthLadder
from fewtune.data.tasks import Example


def label_probs(
    module, encoder: PromptEncoder, examples: Sequence[Example], batch_size: int = 32
) -> torch.Tensor:
    """[examples, labels]: softmax over the labels of their words' scores at the slot.

    ``encoder`` may render another template than the one ``module`` was built with: its own
    label words are scored.
    """
    items = [encoder.encode(ex, 0) for ex in examples]
    return encoded_label_probs(
        module, items, encoder.tokenizer.pad_token_id, encoder.label_words, batch_size
    )


@torch.no_grad()
def encoded_label_probs(
    module,
    items: Sequence[Encoded],
    pad_id: int,
    label_words,
    batch_size: int = 32,
    lengths: LengthLadder | None = None,
) -> torch.Tensor:
    """[items, labels]: ``label_probs`` of inputs already rendered (e.g. with demonstrations),
    in the order given; batches padded to the ``lengths`` ladder where there is one (a run's
    evaluation ladder: the shapes its dev and test batches meet, data/lengths.py)."""
    collate = Collator(pad_id, eval_lengths=lengths)
    # Order does not matter to the scores: batches of similar lengths pad least (a small saving
    # with demonstrations, whose length dominates); the rows go back in the given order at the end.
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    items = [items[i] for i in order]
    modes = {
        m: m.training for m in module.modules()
    }  # module.train(True) would also wake the backbone's dropout
    module.eval()
    out = []
    try:
        for start in range(0, len(items), batch_size):
            batch = {
                name: t.to(module.device)
                for name, t in collate(items[start : start + batch_size], evaluation=True).items()
            }
            out.append(module.label_logits(batch, label_words).float().softmax(-1).cpu())
    finally:
        for m, training in modes.items():
            m.training = training
    by_length = torch.cat(out) if out else torch.empty(0, label_words.num_classes)
    probs = torch.empty_like(by_length)
    probs[torch.tensor(order, dtype=torch.long)] = by_length
    return probs
