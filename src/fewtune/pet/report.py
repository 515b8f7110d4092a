"""What a PET run reports: metrics.json in the usual shape (``test``, ``best_dev`` and the costs
are the final model's: the distilled model, or the ensemble without distillation) plus
``ensemble``, ``ensemble_dev``, ``distilled``, ``patterns`` and ``pet``; and the loggers' values."""

from __future__ import annotations

from omegaconf import OmegaConf

from fewtune.pet.ensemble import ensemble_probs, task_metrics
from fewtune.pet.kshot import KShot
from fewtune.pet.patterns import Pattern
from fewtune.pet.settings import PetSettings
from fewtune.pet.training import Trained, stack
from fewtune.run.results import cost_record, run_identity
from fewtune.run.scored import scored_record


def pet_results(
    cfg,
    settings: PetSettings,
    data: KShot,
    patterns: list[Pattern],
    generations: list[list[Trained]],
    weights,
    distilled: Trained | None,
    unlabeled: dict,
) -> dict:
    """metrics.json's content but for the wall time, peak memory and the job's record."""
    metric, targets = cfg.task.metric, data.targets("test")
    final = generations[-1]
    ensemble = task_metrics(ensemble_probs(stack(final, "test"), weights), targets, metric)
    ensemble_dev = task_metrics(
        ensemble_probs(stack(final, "dev"), weights), data.targets("dev"), metric
    )[metric]
    distilled_test = task_metrics(distilled.test, targets, metric) if distilled else None
    result_models = [distilled] if distilled else final
    trained = [m for models in generations for m in models] + ([distilled] if distilled else [])
    step_times = [t for m in trained for t in m.step_times]
    trainable, total = sum(m.trainable for m in result_models), sum(m.total for m in result_models)
    return {
        **run_identity(cfg),
        "test": distilled_test or ensemble,
        "test_split": data.test_split,
        "best_dev": distilled.best_dev if distilled else ensemble_dev,
        **scored_record(len(data.dev), len(data.test), data.test_size),
        "ensemble": ensemble,
        "ensemble_dev": ensemble_dev,
        **({"distilled": distilled_test} if distilled else {}),
        "patterns": [
            {
                **pattern.record(),
                "dev_acc_before": before.dev_accuracy_before,
                "weight": float(weight),
                "best_dev": model.best_dev,
                "test": task_metrics(model.test, targets, metric),
                "train_size": model.train_size,
                "trainable_params": model.trainable,
                "total_params": model.total,
                "task_storage_bytes": model.stored_bytes,
            }
            for pattern, before, model, weight in zip(
                patterns, generations[0], final, weights.tolist()
            )
        ],
        "pet": {
            "ensemble": settings.ensemble,
            "distill": settings.distill,
            "temperature": settings.temperature,
            **unlabeled,
            "ipet_generations": settings.generations,
            **(
                {"ipet": _generations(generations, weights, targets, metric)}
                if settings.generations
                else {}
            ),
        },
        "steps": sum(m.steps for m in trained),
        "precision": result_models[0].precision,
        **cost_record(
            trainable,
            total,
            sum(m.stored_bytes for m in result_models),
            round(sum(step_times) / len(step_times), 6) if step_times else None,
        ),
    }


def _generations(
    generations: list[list[Trained]], weights, targets: list[int], metric: str
) -> list[dict]:
    """Per iPET generation: each pattern's training set size and test metric, and the ensemble's."""
    return [
        {
            "generation": g,
            "train_sizes": [m.train_size for m in models],
            "patterns": [task_metrics(m.test, targets, metric)[metric] for m in models],
            "ensemble": task_metrics(
                ensemble_probs(stack(models, "test"), weights), targets, metric
            ),
        }
        for g, models in enumerate(generations)
    ]


def log_results(cfg, results: dict, predictions: dict | None = None) -> None:
    """The run's config and its test, ensemble and distilled metrics (and its test and dev
    predictions, as W&B tables), to the configured loggers."""
    from fewtune.predictions.run_files import log_predictions
    from fewtune.run.build import instantiate_group

    values = {
        f"{part}/{name}": v
        for part in ("test", "ensemble", "distilled")
        for name, v in results.get(part, {}).items()
    }
    for logger in instantiate_group(cfg.get("logger")):
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(values, step=results["steps"])
        log_predictions([logger], predictions or {})
        logger.save()
