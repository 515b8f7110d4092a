"""A method=pet job from start to metrics.json: ``train.train`` hands PET runs to ``train_pet``.

1. every pattern's prompt model, trained as method=prompt trains (same seed, optimizer, steps,
   best-dev checkpoint), with its dev accuracy measured before training (the ``weighted`` weights);
2. iPET generations, if asked (ipet.py);
3. the ensemble of the last generation's models on dev and test (ensemble.py);
4. distillation: the ensemble's soft labels on the unlabeled examples train method=finetune's
   classifier head (fit.py), which is then the run's result.

Each model writes into a folder of its own under the run's: ``pattern-<i>/`` (iPET:
``ipet-<g>/pattern-<i>/``) and ``distilled/``. The predictions are made on the examples in file
order; ``trainer.limit_val_batches`` / ``limit_test_batches`` (counts of eval batches) cut them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from fewtune.data.tasks import Example, TaskSpec, check_k_shot
from fewtune.errors import FewtuneError
from fewtune.pet.ensemble import accuracy, ensemble_probs, pattern_weights, soft_labels, task_metrics
from fewtune.pet.fit import ModelRun
from fewtune.pet.ipet import added_size, label_shares, labelled_by_others
from fewtune.pet.patterns import Pattern, classifier_config, pattern_config, task_patterns
from fewtune.pet.settings import PetSettings
from fewtune.pet.unlabeled import unlabeled_examples
from fewtune.results import METRICS_FILE, write_json_atomic

log = logging.getLogger("fewtune")


@dataclass
class KShot:
    """The run's K-shot examples and their label indices; dev and test as far as the limits go."""

    train: list[Example]
    dev: list[Example]
    test: list[Example]
    test_split: str
    task: TaskSpec

    @classmethod
    def read(cls, cfg, task: TaskSpec) -> "KShot":
        test_split = cfg.get("test_split", "test")
        folder = task.check_files(cfg.paths.data_dir, cfg.k, cfg.data_seed, ("train", "dev", test_split))
        train, dev = (task.read_split(folder, split, cfg.paths.data_dir) for split in ("train", "dev"))
        check_k_shot(task, train, cfg.k, "train")
        check_k_shot(task, dev, cfg.k, "dev")
        test = task.read_split(folder, test_split, cfg.paths.data_dir)
        limits, size = cfg.trainer, cfg.eval_batch_size
        dev, test = _first_batches(dev, limits.get("limit_val_batches"), size), _first_batches(test, limits.get("limit_test_batches"), size)
        return cls(train, dev, test, test_split, task)

    def targets(self, split: str) -> list[int]:
        return [self.task.target(ex.label) for ex in getattr(self, split)]


def _first_batches(examples: list, limit, batch_size: int) -> list:
    if limit is None:
        return examples
    return examples[: int(limit * len(examples))] if isinstance(limit, float) else examples[: limit * batch_size]


@dataclass
class Trained:
    """What PET keeps of a trained model: its label logits and what it cost."""

    dev: torch.Tensor
    test: torch.Tensor
    unlabeled: torch.Tensor
    best_dev: float | None
    steps: int
    step_times: list[float]
    stored_bytes: int
    trainable: int
    total: int
    train_size: int
    dev_accuracy_before: float | None = None

    @classmethod
    def of(cls, model: ModelRun, data: KShot, unlabeled: list[Example], before: float | None = None) -> "Trained":
        return cls(
            dev=model.predict(data.dev),
            test=model.predict(data.test),
            unlabeled=model.predict(unlabeled),
            best_dev=model.best_dev,
            steps=model.steps,
            step_times=model.timer.times[1:] or model.timer.times,  # without the warm-up step, as StepTimer
            stored_bytes=model.stored_bytes,
            trainable=model.trainable,
            total=model.total,
            train_size=len(model.datamodule.encoded["train"]),
            dev_accuracy_before=before,
        )


def train_pattern(cfg, pattern: Pattern, family: str, folder: Path, data: KShot, added: list, predict_on: list,
                  measure_before: bool) -> Trained:  # fmt: skip
    """One pattern's model: method=prompt's model and training with the pattern as template,
    on the K-shot set plus ``added`` (example, label) pairs; its logits on dev, test, ``predict_on``."""
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True)  # as train.train seeds method=prompt
    model = ModelRun(pattern_config(cfg, pattern, family, folder))
    before = None
    if measure_before:
        with torch.random.fork_rng(devices=[]):  # the DataLoader draws a seed: keep training's randomness
            before = accuracy(model.predict(data.dev), data.targets("dev"))
    if added:
        model.set_training([ex for ex, _ in added], [label for _, label in added], keep_k_shot=True)
    model.fit()
    return Trained.of(model, data, predict_on, before)


def distill(cfg, data: KShot, unlabeled: list[Example], targets: torch.Tensor) -> Trained:
    """method=finetune's classifier head trained on the soft labels alone; dev picks its checkpoint."""
    import pytorch_lightning as pl

    pl.seed_everything(cfg.seed, workers=True)
    model = ModelRun(classifier_config(cfg, Path(cfg.paths.output_dir) / "distilled"))
    model.set_training(unlabeled, targets.tolist(), keep_k_shot=False)
    model.fit()
    return Trained.of(model, data, [])


def _stack(models: list[Trained], split: str) -> torch.Tensor:
    return torch.stack([getattr(m, split) for m in models])


def train_pet(cfg) -> dict:
    from fewtune import peft, resume, workers
    from fewtune.models import backbones
    from fewtune.resources import peak_memory_mb, reset_peak_gpu_memory

    start = time.perf_counter()
    workers.require_own_process()
    settings = PetSettings.from_config(cfg)
    peft.check(cfg.peft, cfg.method)
    task = TaskSpec.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    family = backbones.resolve(cfg.model, cfg.paths.cache_dir).family
    patterns = task_patterns(cfg, task, family)
    if settings.generations and len(patterns) < 2:
        raise FewtuneError(
            f"method.ipet.generations={settings.generations}: iPET labels a pattern's data with the other patterns' "
            f"models, and task '{task.name}' has one {family} pattern; add patterns or set method.ipet.generations=0"
        )
    job = resume.Job(cfg)
    if (done := job.start()) is not None:
        return done
    reset_peak_gpu_memory()
    data = KShot.read(cfg, task)
    unlabeled, source = [], None
    if settings.needs_unlabeled:  # before any training: a missing pool fails the run at once
        unlabeled, source = unlabeled_examples(cfg, task, settings.unlabeled, settings.unlabeled_file, data.train + data.dev)
    out = Path(cfg.paths.output_dir)

    generations: list[list[Trained]] = []
    weights = None
    shares = label_shares(data.targets("train"), len(task.labels))
    for generation in range(settings.generations + 1):
        last = generation == settings.generations
        predict_on = unlabeled if not last or settings.distill else []
        size = added_size(len(data.train), settings.factor, generation)
        models = []
        for i, pattern in enumerate(patterns):
            log.info("PET generation %d, pattern %d/%d: %s", generation, i + 1, len(patterns), pattern.template)
            added = []
            if generation:
                chosen = labelled_by_others(_stack(generations[-1], "unlabeled"), weights, i, size, shares)
                added = [(unlabeled[j], label) for j, label in chosen]
            folder = out / (f"pattern-{i}" if generation == 0 else f"ipet-{generation}/pattern-{i}")
            models.append(train_pattern(cfg, pattern, family, folder, data, added, predict_on, generation == 0))
        if generation == 0:
            weights = pattern_weights(settings.ensemble, [m.dev_accuracy_before for m in models])
        generations.append(models)

    final = generations[-1]
    metric = task.metric
    ensemble = task_metrics(ensemble_probs(_stack(final, "test"), weights), data.targets("test"), metric)
    ensemble_dev = task_metrics(ensemble_probs(_stack(final, "dev"), weights), data.targets("dev"), metric)[metric]
    distilled = None
    if settings.distill:
        log.info("PET distillation: %d unlabeled examples, soft labels at temperature %s", len(unlabeled), settings.temperature)
        distilled = distill(cfg, data, unlabeled, soft_labels(_stack(final, "unlabeled"), weights, settings.temperature))
    distilled_test = task_metrics(distilled.test, data.targets("test"), metric) if distilled else None

    results_models = [distilled] if distilled else final
    trained = [m for models in generations for m in models] + ([distilled] if distilled else [])
    step_times = [t for m in trained for t in m.step_times]
    trainable, total = sum(m.trainable for m in results_models), sum(m.total for m in results_models)
    first = generations[0]
    results = {
        "task": cfg.task.name,
        "model": cfg.model.name,
        "method": cfg.method.name,
        "peft": cfg.peft.name,
        "k": cfg.k,
        "seed": cfg.seed,
        "data_seed": cfg.data_seed,
        "metric": metric,
        "test": distilled_test or ensemble,
        "test_split": data.test_split,
        "best_dev": distilled.best_dev if distilled else ensemble_dev,
        "ensemble": ensemble,
        "ensemble_dev": ensemble_dev,
        **({"distilled": distilled_test} if distilled else {}),
        "patterns": [
            {
                **pattern.record(),
                "dev_acc_before": before.dev_accuracy_before,
                "weight": float(weight),
                "best_dev": model.best_dev,
                "test": task_metrics(model.test, data.targets("test"), metric),
                "train_size": model.train_size,
                "trainable_params": model.trainable,
                "total_params": model.total,
                "task_storage_bytes": model.stored_bytes,
            }
            for pattern, before, model, weight in zip(patterns, first, final, weights.tolist())
        ],
        "pet": {
            "ensemble": settings.ensemble,
            "distill": settings.distill,
            "temperature": settings.temperature,
            "unlabeled": len(unlabeled),
            "unlabeled_source": source,
            "ipet_generations": settings.generations,
            **({"ipet": _generations_record(generations, weights, data, metric)} if settings.generations else {}),
        },
        "steps": sum(m.steps for m in trained),
        "wall_time_s": round(time.perf_counter() - start, 2),
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": round(trainable / total, 6),
        "task_storage_bytes": sum(m.stored_bytes for m in results_models),
        "step_time_s": round(sum(step_times) / len(step_times), 6) if step_times else None,
        **peak_memory_mb(),
        **job.record(),
    }
    write_json_atomic(out / METRICS_FILE, results)
    job.finish()
    _log_to_loggers(cfg, results)
    log.info("%s PET ensemble test %s = %.4f (dev %.4f)", task.name, metric, ensemble[metric], ensemble_dev)
    log.info("%s test %s = %.4f (best dev %s)", task.name, metric, results["test"][metric], results["best_dev"])
    return results


def _generations_record(generations: list[list[Trained]], weights, data: KShot, metric: str) -> list[dict]:
    """Per iPET generation: each pattern's training set size and test metric, and the ensemble's."""
    targets = data.targets("test")
    return [
        {
            "generation": g,
            "train_sizes": [m.train_size for m in models],
            "patterns": [task_metrics(m.test, targets, metric)[metric] for m in models],
            "ensemble": task_metrics(ensemble_probs(_stack(models, "test"), weights), targets, metric),
        }
        for g, models in enumerate(generations)
    ]


def _log_to_loggers(cfg, results: dict) -> None:
    from fewtune.train import _instantiate_all

    loggers = _instantiate_all(cfg.get("logger"))
    values = {f"{part}/{name}": v for part in ("test", "ensemble", "distilled") for name, v in results.get(part, {}).items()}
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(values, step=results["steps"])
        logger.save()
