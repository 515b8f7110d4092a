"""Contextual calibration (Zhao, Wallace, Feng, Klein and Singh, ICML 2021, "Calibrate Before
Use: Improving Few-Shot Performance of Language Models").

A prompt biases the LM towards some label words whatever the input. The bias is measured on
content-free inputs ("N/A", "", the mask token) put in every field of the template: their
label-word probabilities, averaged and renormalised, are ``p_cf``. A prediction's probabilities
``p`` are then rescaled by diag(p_cf)^-1 and renormalised, so that a content-free input scores
every label equally. (The paper's W = diag(p_cf)^-1, b = 0, as its code renormalises.)

With demonstrations (in-context learning; Zhao et al. calibrate it so) the content-free input is
shown with the same demonstrations as the query it calibrates, so p_cf is measured once per
demonstration set. Every dev and test row names its set (``Encoded.demos``). With
``demonstrations.fixed=true`` all queries share ``eval_sets`` sets: that many p_cf. Otherwise each
query draws sets of its own, and each set costs one more forward pass per content-free input (2
for causal LMs, 3 for masked LMs). The module rescales each row by its set's p_cf, then averages
the sets (models/demo_head.py). A content-free input is short, so it shows its set's
demonstrations uncut even where a long query had their text shortened to fit ``max_length``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from fewtune.data.encoding import Encoded, PromptEncoder
from fewtune.data.tasks import Example
from fewtune.errors import FewtuneError
from fewtune.run.scored import reached
from fewtune.scoring.probs import encoded_label_probs, label_probs

CONTENT_FREE = ("N/A", "")
Set = tuple[int, ...]  # the training examples shown, by index, in the order shown


def content_free_texts(tokenizer) -> list[str]:
    """ "N/A", "" and, for a tokenizer that has one (masked LMs), the mask token."""
    return [*CONTENT_FREE, *([tokenizer.mask_token] if tokenizer.mask_token else [])]


def content_free_examples(fields: Sequence[str], texts: Sequence[str]) -> list[Example]:
    """One example per content-free text, the text in every field (a pair task gets it twice)."""
    return [Example(fields={name: text for name in fields}, label="") for text in texts]


def content_free_probs(
    module, encoder: PromptEncoder, fields: Sequence[str], texts: Sequence[str] | None = None
):
    """p_cf: [labels], the label-word probabilities averaged over the content-free inputs, summing to 1."""
    texts = content_free_texts(encoder.tokenizer) if texts is None else list(texts)
    if not texts:
        raise FewtuneError(
            "contextual calibration needs at least one content-free input, e.g. 'N/A'"
        )
    return average_content_free(label_probs(module, encoder, content_free_examples(fields, texts)))


def average_content_free(probs: torch.Tensor) -> torch.Tensor:
    """[..., texts, labels] -> [..., labels]: the mean over the content-free texts, renormalised."""
    p = probs.mean(-2)
    return p / p.sum(-1, keepdim=True)


def calibrate(probs: torch.Tensor, p_cf: torch.Tensor) -> torch.Tensor:
    """``probs`` ([..., labels]) rescaled by diag(p_cf)^-1 and renormalised over the labels.
    ``p_cf`` is one [labels] for all rows, or one per row ([..., labels], as ``probs``)."""
    if probs.shape[-1] != p_cf.shape[-1] or p_cf.dim() not in (1, probs.dim()):
        raise FewtuneError(
            f"calibration: probabilities over {probs.shape[-1]} labels but p_cf over {tuple(p_cf.shape)}; "
            "compute p_cf with the same task and template"
        )
    if not bool((p_cf > 0).all()):
        raise FewtuneError(
            "calibration: p_cf has a label with probability 0, which cannot be rescaled"
        )
    q = probs / p_cf
    return q / q.sum(-1, keepdim=True)


def calibrate_module(cfg, module, datamodule) -> dict | None:
    """For ``method.calibrate=true``: measure p_cf with the untrained module and make its label
    logits calibrated ones. Returns what metrics.json records (``calibration_p_cf``), or None
    when the option is off."""
    method = cfg.method
    if not method.get("calibrate", False):
        return None
    if method.head != "lm" or method.train:
        raise FewtuneError(
            f"method '{method.name}': calibrate=true needs an untrained prompt (method=zeroshot or method=icl): "
            "p_cf is measured once, before evaluation, with the model that is evaluated"
        )
    from fewtune.run.hardware import run_device

    module.to(run_device(cfg.trainer.accelerator))  # a GPU run's passes run on its GPU
    if method.get("demonstrations") is not None:  # one p_cf per demonstration set
        return calibrate_demonstrations(module, datamodule, cfg.get("trainer"))
    module.p_cf = content_free_probs(module, datamodule.encoder, datamodule.task.text_fields)
    return {"calibration_p_cf": module.p_cf.tolist()}


def demonstration_sets(datamodule, trainer: Mapping | None = None) -> list[Set]:
    """The distinct demonstration sets that dev and test show, in first-seen order: those of
    the groups evaluation reaches where ``trainer`` (the run's trainer config) cuts it short."""
    datamodule.setup()
    trainer = trainer or {}
    limits = {"dev": trainer.get("limit_val_batches"), "test": trainer.get("limit_test_batches")}
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    processes = devices * nodes if isinstance(devices, int) and isinstance(nodes, int) else None
    rows = (
        row
        for split, limit in limits.items()
        for group in reached(
            datamodule.encoded[split], limit, datamodule.eval_batch_size, processes
        )
        for row in group
    )
    return list(dict.fromkeys(row.demos for row in rows))


def content_free_rows(datamodule, shown: Set, texts: Sequence[str]) -> list[Encoded]:
    """Each content-free text in every field of the query, shown with the demonstrations ``shown``."""
    examples = content_free_examples(datamodule.task.text_fields, texts)
    return [datamodule.encode_with(example, 0, list(shown)) for example in examples]


def set_p_cf(
    module, datamodule, sets: Sequence[Set], texts: Sequence[str] | None = None
) -> torch.Tensor:
    """[sets, labels]: each set's p_cf, the label-word probabilities of its content-free inputs
    averaged and renormalised (as content_free_probs without demonstrations)."""
    prompt = datamodule.encoder.prompt
    texts = content_free_texts(prompt.tokenizer) if texts is None else list(texts)
    rows = [row for shown in sets for row in content_free_rows(datamodule, shown, texts)]
    rows_per_batch = (
        datamodule.eval_batch_size * datamodule.settings.eval_sets
    )  # eval_batch_size counts rows
    collate = datamodule.collate
    probs = encoded_label_probs(
        module, rows, collate.pad_id, prompt.label_words, rows_per_batch, collate.eval_lengths
    )
    return average_content_free(probs.view(len(sets), len(texts), -1))


def calibrate_demonstrations(module, datamodule, trainer: Mapping | None = None) -> dict:
    """Measure every set's p_cf with the untrained module and have each dev/test batch bring its
    rows' (``batch["p_cf"]``). Returns the summary metrics.json records: the mean p_cf over the
    sets, its standard deviation over them, and how many sets there were."""
    sets = demonstration_sets(datamodule, trainer)
    p_cf = set_p_cf(module, datamodule, sets)
    datamodule.collate.p_cf = dict(zip(sets, p_cf))
    return {
        "calibration_p_cf": p_cf.mean(0).tolist(),
        "calibration_p_cf_std": p_cf.std(0, correction=0).tolist(),
        "calibration_sets": len(sets),
    }
