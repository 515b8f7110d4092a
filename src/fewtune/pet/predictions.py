"""A PET run's per-example predictions (fewtune/predictions/store.py), from the label logits PET
keeps of each model, in the split's file order:

    predictions/{dev,test}.parquet            what metrics.json's "test" scores: the distilled
                                              model, or the ensemble without distillation
    predictions/ensemble-{dev,test}.parquet   the patterns' ensemble (distilled runs only)
    predictions/pattern-<i>-{dev,test}.parquet  each pattern's model (of the last iPET generation)

Each file scores as metrics.json does (its ``test``, ``ensemble``, ``patterns[i].test``): all of
the split in one batch, as ``ensemble.task_metrics`` scores.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fewtune.pet.ensemble import ensemble_probs
from fewtune.pet.kshot import KShot
from fewtune.pet.patterns import Pattern
from fewtune.pet.training import Trained, stack
from fewtune.predictions.store import SPLITS, Predictions, path_of, task_meta


def write_pet_predictions(cfg, data: KShot, patterns: list[Pattern], final: list[Trained], weights,
                          distilled: Trained | None) -> dict[str, Predictions]:  # fmt: skip
    """Writes the files above under the run's folder; returns the run's own ({split: predictions})."""
    out = Path(cfg.paths.output_dir)
    folder = data.task.split_dir(cfg.paths.data_dir, cfg.k, cfg.data_seed)
    own = {}
    for split in SPLITS:
        source = data.test_split if split == "test" else split
        meta = {
            **task_meta(data.task, str(data.task.split_path(source, folder, cfg.paths.data_dir))),
            "split": split,
        }
        gold = data.targets(split)
        ensemble = _from_probs(meta, gold, ensemble_probs(stack(final, split), weights))
        for i, (pattern, model) in enumerate(zip(patterns, final)):
            words = task_meta(data.task, label_words=pattern.verbalizer)["label_words"]
            _from_logits({**meta, "label_words": words}, gold, getattr(model, split)).write(
                path_of(out, split, f"pattern-{i}-")
            )
        if distilled is None:
            own[split] = ensemble
        else:
            ensemble.write(path_of(out, split, "ensemble-"))
            own[split] = _from_logits(meta, gold, getattr(distilled, split))
        own[split].write(path_of(out, split))
    return own


def _from_logits(meta: dict, gold: list, logits: torch.Tensor) -> Predictions:
    logits = logits.float()
    return Predictions.build(
        meta,
        range(len(gold)),
        gold,
        probs=logits.softmax(-1).numpy(),
        pred=logits.argmax(-1).numpy(),
    )


def _from_probs(meta: dict, gold: list, probs: torch.Tensor) -> Predictions:
    return Predictions.build(
        meta, range(len(gold)), gold, probs=probs.float().numpy(), pred=probs.argmax(-1).numpy()
    )
