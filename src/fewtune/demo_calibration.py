"""Contextual calibration with demonstrations (Zhao et al., 2021, as they calibrate in-context
learning): the content-free inputs ("N/A", "", the mask token) are shown with the same
demonstrations as the query they calibrate, so p_cf is measured once per demonstration set.

Every dev and test row names its set (``Encoded.demos``). With ``demonstrations.fixed=true``
all queries share ``eval_sets`` sets: that many p_cf. Otherwise each query draws sets of its own,
and each set costs one more forward pass per content-free input (2 for causal LMs, 3 for masked
LMs). The module rescales each row by its set's p_cf, then averages the sets (models/demo_head.py).
A content-free input is short, so it shows its set's demonstrations uncut even where a long
query had their text shortened to fit ``max_length``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from fewtune.calibration import average_content_free, content_free_examples, content_free_texts
from fewtune.data.encoding import Encoded
from fewtune.scoring import encoded_label_probs

Set = tuple[int, ...]  # the training examples shown, by index, in the order shown


def demonstration_sets(datamodule) -> list[Set]:
    """The distinct demonstration sets that dev and test show, in first-seen order."""
    datamodule.setup()
    rows = (row for split in ("dev", "test") for group in datamodule.encoded[split] for row in group)
    return list(dict.fromkeys(row.demos for row in rows))


def content_free_rows(datamodule, shown: Set, texts: Sequence[str]) -> list[Encoded]:
    """Each content-free text in every field of the query, shown with the demonstrations ``shown``."""
    examples = content_free_examples(datamodule.task.text_fields, texts)
    return [datamodule.encode_with(example, 0, list(shown)) for example in examples]


def set_p_cf(module, datamodule, sets: Sequence[Set], texts: Sequence[str] | None = None) -> torch.Tensor:
    """[sets, labels]: each set's p_cf, the label-word probabilities of its content-free inputs
    averaged and renormalised (as calibration.content_free_probs without demonstrations)."""
    prompt = datamodule.encoder.prompt
    texts = content_free_texts(prompt.tokenizer) if texts is None else list(texts)
    rows = [row for shown in sets for row in content_free_rows(datamodule, shown, texts)]
    rows_per_batch = datamodule.eval_batch_size * datamodule.settings.eval_sets  # eval_batch_size counts rows
    probs = encoded_label_probs(module, rows, datamodule.collate.pad_id, prompt.label_words, rows_per_batch)
    return average_content_free(probs.view(len(sets), len(texts), -1))


def calibrate_demonstrations(module, datamodule) -> dict:
    """Measure every set's p_cf with the untrained module and have each dev/test batch bring its
    rows' (``batch["p_cf"]``). Returns the summary metrics.json records: the mean p_cf over the
    sets, its standard deviation over them, and how many sets there were."""
    sets = demonstration_sets(datamodule)
    p_cf = set_p_cf(module, datamodule, sets)
    datamodule.collate.p_cf = dict(zip(sets, p_cf))
    return {
        "calibration_p_cf": p_cf.mean(0).tolist(),
        "calibration_p_cf_std": p_cf.std(0, correction=0).tolist(),
        "calibration_sets": len(sets),
    }
