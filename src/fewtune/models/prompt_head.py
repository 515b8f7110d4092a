"""Prompt-based fine-tuning: the PLM's own LM head scores the label words at the slot.

Only the slot's hidden state goes through the LM head (never the full vocabulary at every
position), and the label logits are that head's logits at the label words' ids. No new
parameters: the same module, untrained, is the zero-shot method. Several words per class and
words of several tokens: models/label_scores.py and models/multi_token.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewtune.data.verbalizers import LabelWords
from fewtune.models.backbones import split_lm
from fewtune.models.base import FewShotModule
from fewtune.models.label_scores import class_scores
from fewtune.models.multi_token import word_scores
from fewtune.models.packing import pack, packed_hidden


def word_logits(model: nn.Module, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The LM head's logits of the words ``ids`` at the given hidden states: [rows, len(ids)].

    Where the head is the output embedding alone (Llama, SmolLM2, GPT-2's ``lm_head``), only its
    rows for ``ids`` are multiplied; other heads (BERT's transform, then the decoder) run whole
    and are indexed after. Early exit calls the head after every layer: a whole vocabulary-sized
    head (cast to bf16 again at each call under autocast) would cost as much as the layers. A
    product over fewer rows can round differently in the last bit, so the prompt head's own
    forward, once per batch, keeps the whole head: its scores stay bit-identical to earlier runs (``python -m fewtune.evaluate`` reproduces them exactly).
    """
    _, head = split_lm(model)
    out = model.get_output_embeddings()
    if len(head) == 1 and head[0] is out and isinstance(out, nn.Linear):
        return F.linear(hidden, out.weight[ids], None if out.bias is None else out.bias[ids])
    for module in head:
        hidden = module(hidden)
    return hidden[:, ids]


def as_label_words(words) -> LabelWords:
    """A ``LabelWords``, or the ids of one single-token word per class (the original verbalizers)."""
    if isinstance(words, LabelWords):
        return words
    return LabelWords.single(words.tolist() if isinstance(words, torch.Tensor) else words)


class PromptModule(FewShotModule):
    def __init__(self, model: nn.Module, label_words: LabelWords | list[int], **kwargs):
        label_words = as_label_words(label_words)
        super().__init__(num_labels=label_words.num_classes, **kwargs)
        self.model = model
        self.label_words = label_words
        # Single-token words: the LM head's logits at the slot are read at these ids.
        self.register_buffer(
            "label_word_ids", torch.tensor(label_words.first_ids), persistent=False
        )
        # Contextual calibration's p_cf (fewtune/scoring/calibration.py), set for method.calibrate=true.
        self.p_cf: torch.Tensor | None = None

    def slot_hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head_rows(batch)

    def padded_rows(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        body, _ = split_lm(self.model)
        hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        rows = torch.arange(hidden.size(0), device=hidden.device)
        return hidden[rows, batch["slot"]]

    def packed_rows(self, batch: dict[str, torch.Tensor], how: str) -> torch.Tensor:
        packed = pack(batch, self.lengths)
        return packed_hidden(split_lm(self.model)[0], packed, how)[packed.starts + batch["slot"]]

    def label_logits(self, batch: dict[str, torch.Tensor], word_ids=None) -> torch.Tensor:
        """The label (class) scores: the LM head's logits at the slot for the label words, reduced
        per class. ``word_ids``: other words (a ``LabelWords`` or ids), e.g. another template's,
        where a space before the slot changes them."""
        words = self.label_words if word_ids is None else as_label_words(word_ids)
        if words.single_token:
            h = self.slot_hidden(batch)
            for module in split_lm(self.model)[
                1
            ]:  # the whole head, once per batch: see word_logits
                h = module(h)
            ids = self.label_word_ids
            if word_ids is not None:
                ids = (
                    word_ids
                    if isinstance(word_ids, torch.Tensor)
                    else torch.tensor(words.first_ids, device=h.device)
                )
            logits = class_scores(h[:, ids], words)
        else:  # several tokens: their log-probs at the slot and after it (models/multi_token.py)
            logits = class_scores(word_scores(*split_lm(self.model), batch, words), words)
        if self.p_cf is None or word_ids is not None:
            return logits
        from fewtune.scoring.calibration import calibrate

        # log of the calibrated probabilities: argmax, softmax and STS-B's score all follow them
        return calibrate(logits.float().softmax(-1), self.p_cf.to(logits.device)).log()
