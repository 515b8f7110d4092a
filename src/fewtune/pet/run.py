"""A method=pet job from start to metrics.json: conf/method/pet.yaml names ``train_pet`` as its
``runner`` (run/methods.py), which ``train(cfg)`` calls instead of the default single run.

1. every pattern's prompt model, trained as method=prompt trains (same seed, optimizer, steps,
   best-dev checkpoint), its dev accuracy measured before training (the ``weighted`` weights);
2. iPET generations, if asked (ipet.py);
3. the ensemble of the last generation's models (ensemble.py);
4. distillation: the ensemble's soft labels on the unlabeled examples train method=finetune's
   classifier head, which is then the run's result.

Each model writes into a folder of its own under the run's: ``pattern-<i>/`` (iPET:
``ipet-<g>/pattern-<i>/``) and ``distilled/``. The settings, the patterns and the unlabeled
pool are checked before the first model loads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from fewtune.data.tasks import TaskSpec
from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_json_atomic
from fewtune.pet.ensemble import pattern_weights, soft_labels
from fewtune.pet.ipet import added_size, label_shares, labelled_by_others
from fewtune.pet.kshot import KShot
from fewtune.pet.patterns import Pattern, task_patterns
from fewtune.pet.predictions import write_pet_predictions
from fewtune.pet.report import log_results, pet_results
from fewtune.pet.settings import PetSettings
from fewtune.pet.training import Trained, stack, train_distilled, train_pattern
from fewtune.pet.unlabeled import unlabeled_examples
from fewtune.run.results import METRICS_FILE
from fewtune.run.scored import smoke_mark

log = logging.getLogger("fewtune")


def train_pet(cfg) -> dict:
    from fewtune import peft
    from fewtune.jobs import resume
    from fewtune.models import backbones
    from fewtune.run import workers
    from fewtune.run.resources import peak_memory_mb, reset_peak_gpu_memory

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
    if settings.needs_unlabeled:
        kshot = data.train + data.dev
        unlabeled, source = unlabeled_examples(
            cfg, task, settings.unlabeled, settings.unlabeled_file, kshot
        )

    generations, weights = train_generations(cfg, settings, patterns, family, data, unlabeled)
    distilled = None
    if settings.distill:
        log.info(
            "PET distillation: %d unlabeled examples, soft labels at temperature %s",
            len(unlabeled),
            settings.temperature,
        )
        targets = soft_labels(stack(generations[-1], "unlabeled"), weights, settings.temperature)
        distilled = train_distilled(cfg, data, unlabeled, targets)

    pool = {"unlabeled": len(unlabeled), "unlabeled_source": source}
    results = pet_results(cfg, settings, data, patterns, generations, weights, distilled, pool)
    results.update(
        wall_time_s=round(time.perf_counter() - start, 2), **peak_memory_mb(), **job.record()
    )
    predictions = write_pet_predictions(
        cfg, data, patterns, generations[-1], weights, distilled
    )  # before metrics.json
    write_json_atomic(Path(cfg.paths.output_dir) / METRICS_FILE, results)
    job.finish()
    log_results(cfg, results, predictions)
    metric = task.metric
    log.info(
        "%s PET ensemble test %s = %.4f (dev %.4f)",
        task.name,
        metric,
        results["ensemble"][metric],
        results["ensemble_dev"],
    )
    log.info(
        "%s test %s = %.4f (best dev %s)%s",
        task.name,
        metric,
        results["test"][metric],
        results["best_dev"],
        smoke_mark(results),
    )
    return results


def refuse_evaluate(run_dir, cfg) -> None:
    """``python -m fewtune.evaluate`` on a PET run: it holds several models, not one to re-test."""
    raise FewtuneError(
        f"{run_dir} is a PET run: several models and their ensemble, which evaluate does not re-test; "
        "its metrics.json holds each pattern's and the ensemble's test metrics"
    )


def train_generations(
    cfg, settings: PetSettings, patterns: list[Pattern], family: str, data: KShot, unlabeled: list
):
    """(each generation's models, the patterns' ensemble weights): generation 0 is PET's, the
    others iPET's, each pattern trained on what the other patterns' last models labelled."""
    out = Path(cfg.paths.output_dir)
    generations: list[list[Trained]] = []
    weights = None
    shares = label_shares(data.targets("train"), len(data.task.labels))
    for generation in range(settings.generations + 1):
        last = generation == settings.generations
        predict_on = (
            unlabeled if not last or settings.distill else []
        )  # the next labels or soft labels
        size = added_size(len(data.train), settings.factor, generation)
        models = []
        for i, pattern in enumerate(patterns):
            round_ = f"iPET generation {generation}, " if settings.generations else ""
            log.info("PET: %spattern %d/%d: %s", round_, i + 1, len(patterns), pattern.template)
            added = []
            if generation:
                chosen = labelled_by_others(
                    stack(generations[-1], "unlabeled"), weights, i, size, shares
                )
                added = [(unlabeled[j], label) for j, label in chosen]
            folder = out / (f"pattern-{i}" if generation == 0 else f"ipet-{generation}/pattern-{i}")
            models.append(
                train_pattern(
                    cfg, pattern, family, folder, data, added, predict_on, generation == 0
                )
            )
        if generation == 0:
            weights = pattern_weights(settings.ensemble, [m.dev_accuracy_before for m in models])
        generations.append(models)
    return generations, weights
