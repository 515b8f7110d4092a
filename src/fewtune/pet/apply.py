"""A finished PET run applied to new texts (``python -m fewtune.predict``): its distilled model, or
without distillation its patterns' models (of the last iPET generation) and their ensemble with
the weights metrics.json records. Each model is rebuilt from the run's config as PET built it
(``pattern_config`` / ``classifier_config``) and given the weights it kept in its folder; it then
predicts as PET predicted the test set (``ModelRun.predict``), so the run's own test file gives
its stored test predictions."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fewtune.data.tasks import Example, TaskSpec
from fewtune.pet.ensemble import ensemble_probs
from fewtune.pet.patterns import classifier_config, pattern_config, task_patterns
from fewtune.pet.settings import PetSettings
from fewtune.run.results import METRICS_FILE

log = logging.getLogger("fewtune")


def pet_members(cfg: DictConfig, run_dir: Path) -> list[tuple[DictConfig, float]]:
    """(each model's config, its ensemble weight): the distilled model alone, or every pattern's."""
    from fewtune.models import backbones

    settings = PetSettings.from_config(cfg)
    if settings.distill:
        return [(classifier_config(cfg, run_dir / "distilled"), 1.0)]
    task = TaskSpec.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    family = backbones.resolve(cfg.model, cfg.paths.cache_dir).family
    recorded = json.loads((run_dir / METRICS_FILE).read_text())["patterns"]
    last = settings.generations
    folders = [
        run_dir / (f"pattern-{i}" if last == 0 else f"ipet-{last}/pattern-{i}")
        for i in range(len(recorded))
    ]
    patterns = task_patterns(cfg, task, family)
    return [
        (pattern_config(cfg, p, family, f), r["weight"])
        for p, f, r in zip(patterns, folders, recorded)
    ]


def pet_probs(
    members: list[tuple[DictConfig, float]], examples: list[Example]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(label probabilities, predicted labels) of ``examples``, in their order."""
    import pytorch_lightning as pl

    from fewtune.pet.model_run import ModelRun
    from fewtune.run.reload import load_run_weights

    logits = []
    for n, (cfg, _) in enumerate(members, 1):
        log.info(
            "PET: model %d/%d (%s): %d texts",
            n,
            len(members),
            Path(cfg.paths.output_dir).name,
            len(examples),
        )
        pl.seed_everything(cfg.seed, workers=True)
        model = ModelRun(cfg)
        load_run_weights(model.module, cfg, Path(cfg.paths.output_dir))
        logits.append(model.predict(examples).float())
    if len(members) == 1 and members[0][0].method.head == "classifier":  # the distilled model
        return logits[0].softmax(-1), logits[0].argmax(-1)
    probs = ensemble_probs(torch.stack(logits), torch.tensor([weight for _, weight in members]))
    return probs, probs.argmax(-1)


def predict_texts(cfg: DictConfig, run_dir: Path, examples: list[Example]):
    """conf/method/pet.yaml's ``predict`` hook (run/methods.py): (probabilities, predicted labels)
    as numpy arrays, once every model's stored weights are known to be there."""
    from fewtune.predictions.apply import require_weights

    members = pet_members(cfg, run_dir)
    for member, _ in members:
        require_weights(member, Path(member.paths.output_dir))
    probs, predicted = pet_probs(members, examples)
    return probs.numpy(), predicted.numpy()
