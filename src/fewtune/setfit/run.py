"""A method=setfit job from start to metrics.json (``method.runner``; ``train.train`` calls ``run``).

1. the contrastive phase: pairs of the K-shot training examples train the body (contrastive.py),
   a Lightning fit of its own;
2. the head: logistic regression on the embeddings of the training examples (heads.py), or the
   differentiable head trained by the config's Trainer on the K-shot set (model.SetFitModule);
3. dev and test with the final weights, as the library has no model selection: ``best_dev`` is
   the final model's dev metric, which the table uses where a grid gives several runs a seed.

metrics.json has the keys of every other method's (train.py), ``cpu_time_s`` and a ``setfit``
block (pairs, steps of each phase, the pooling used); predictions/{dev,test}.parquet hold each
example's prediction, as every run's (fewtune/predictions/). The weights are kept as train.py keeps
them: a peft run's trained weights in task_weights.safetensors, a full run's in the checkpoint
file that ``python -m fewtune.evaluate`` reads (gone with delete_checkpoints=true).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import torch

from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_json_atomic
from fewtune.run.results import METRICS_FILE, cost_record, count_parameters, run_identity
from fewtune.setfit.settings import SetFitSettings

log = logging.getLogger("fewtune")


def allow_evaluate(run_dir, cfg) -> None:
    """``python -m fewtune.evaluate`` re-tests a SetFit run: its builder rebuilds the body and
    head, and the stored weights load into them like any single model's."""


def run(cfg) -> dict:
    import pytorch_lightning as pl

    from fewtune.jobs import resume
    from fewtune.models.shapes_met import ShapesMet
    from fewtune.predictions.recorder import PredictionRecorder
    from fewtune.predictions.run_files import write_run_predictions
    from fewtune.run import workers
    from fewtune.run.loggers import close_loggers, run_loggers
    from fewtune.run.resources import StepTimer, peak_memory_mb, reset_peak_gpu_memory
    from fewtune.run.scored import ScoredExamples, smoke_mark
    from fewtune.setfit.build import build

    start, cpu_start = time.perf_counter(), time.process_time()
    workers.require_own_process()
    settings = SetFitSettings.from_config(cfg.method)
    job = resume.Job(cfg)
    if (done := job.start()) is not None:
        return done
    pl.seed_everything(cfg.seed, workers=True)
    reset_peak_gpu_memory()
    datamodule, module = build(cfg)
    datamodule.setup()
    trainable, total = count_parameters(module)
    loggers = run_loggers(cfg)
    timer = StepTimer()
    shapes = ShapesMet()  # distinct input shapes of the training phases and of dev and test

    body_steps, pairs = train_body(cfg, settings, datamodule, module, loggers, [timer, shapes])
    if settings.head_type == "logistic":
        head_steps = train_logistic(cfg, settings, datamodule, module)
    else:
        head_steps = train_differentiable(cfg, settings, datamodule, module, loggers, [shapes])

    scored = ScoredExamples()  # how much of dev and test was scored: smoke runs stay out of tables
    recorder = PredictionRecorder()  # each dev and test example's prediction: predictions/*.parquet
    trainer = _trainer(cfg, loggers, [scored, recorder, shapes])
    (dev,) = trainer.validate(module, datamodule=datamodule, verbose=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    stored, weights = keep_weights(cfg, module)
    test_split = datamodule.sources["test"]
    costs = {**cost_record(trainable, total, stored, timer.mean_s), **peak_memory_mb()}
    pooling = module.model.pooling
    results = {
        **run_identity(cfg),
        "test": {name.removeprefix("test/"): v for name, v in module.test_results.items()},
        "test_split": test_split,
        "best_dev": dev[f"val/{cfg.task.metric}"],
        **scored.record(len(datamodule.encoded["test"])),
        "steps": body_steps + head_steps,
        **shapes.record(),
        "precision": str(trainer.precision),
        "wall_time_s": round(time.perf_counter() - start, 2),
        "cpu_time_s": round(time.process_time() - cpu_start, 2),
        **costs,
        "setfit": {
            "head_type": settings.head_type,
            "pairs": pairs,
            "body_steps": body_steps,
            "head_steps": head_steps,
            "pooling": {
                "mode": pooling.mode,
                "normalize": pooling.normalize,
                "source": pooling.source,
            },
        },
        **job.record(),
    }
    predictions = write_run_predictions(
        cfg.paths.output_dir, recorder, datamodule
    )  # before metrics.json
    write_json_atomic(Path(cfg.paths.output_dir) / METRICS_FILE, results)
    job.finish()
    close_loggers(loggers, costs, results["steps"], predictions)
    if cfg.get("delete_checkpoints") and weights is not None:
        weights.unlink(missing_ok=True)
    metric = cfg.task.metric
    log.info(
        "%s test %s = %.4f (dev %s)%s",
        cfg.task.name,
        metric,
        results["test"][metric],
        results["best_dev"],
        smoke_mark(results),
    )
    return results


def train_body(
    cfg, settings: SetFitSettings, datamodule, module, loggers, callbacks: list
) -> tuple[int, int]:
    """The contrastive phase; (steps, pairs). Skipped where the body has nothing to train."""
    from fewtune.setfit.contrastive import ContrastiveModule, pair_loader, steps_for
    from fewtune.setfit.pairs import contrastive_pairs

    train = datamodule.encoded["train"]
    pairs = contrastive_pairs(
        [e.label for e in train], settings.num_iterations, settings.sampling, cfg.seed
    )
    model = module.model
    if not any(p.requires_grad for p in model.body_parameters()):
        log.info(
            "SetFit: the body has no trainable weights (peft=%s): no contrastive phase",
            cfg.peft.name,
        )
        return 0, len(pairs)
    steps = steps_for(len(pairs), settings.body_batch_size, settings.body_epochs)
    log.info(
        "SetFit contrastive phase: %d pairs of %d examples, %d steps", len(pairs), len(train), steps
    )
    lr = (
        cfg.peft.lr if cfg.peft.get("lr") is not None else settings.body_lr
    )  # a peft method brings its own
    contrastive = ContrastiveModule(
        model, lr, settings.weight_decay, settings.warmup_proportion, steps
    )
    trainer = _trainer(cfg, loggers, callbacks, max_steps=steps, max_epochs=settings.body_epochs)
    loader = pair_loader(pairs, train, datamodule.collate, settings.body_batch_size)
    trainer.fit(contrastive, train_dataloaders=loader)
    return trainer.global_step, len(pairs)


def train_logistic(cfg, settings: SetFitSettings, datamodule, module) -> int:
    from torch.utils.data import DataLoader

    from fewtune.setfit.heads import embeddings, fit_logistic, load_into_head

    train = datamodule.encoded["train"]
    loader = DataLoader(train, batch_size=cfg.eval_batch_size, collate_fn=datamodule.collate)
    features = embeddings(_trainer(cfg, []), module.model, loader)
    labels = [e.label for e in train]
    classifier = fit_logistic(
        features,
        labels,
        module.num_labels,
        settings.logistic_c,
        settings.logistic_max_iter,
        cfg.seed,
    )
    load_into_head(module.model.head, classifier, module.num_labels)
    log.info("SetFit logistic head: training accuracy %.4f", classifier.score(features, labels))
    return 0


def train_differentiable(
    cfg, settings: SetFitSettings, datamodule, module, loggers, callbacks: list
) -> int:
    from fewtune.setfit.contrastive import steps_for

    steps = steps_for(
        len(datamodule.encoded["train"]), settings.head_batch_size, settings.head_epochs
    )
    log.info("SetFit differentiable head: %d epochs, %d steps%s", settings.head_epochs, steps,
             " (body too)" if settings.end_to_end else "")  # fmt: skip
    trainer = _trainer(cfg, loggers, callbacks, max_steps=steps, max_epochs=settings.head_epochs)
    freeze = (
        contextlib.nullcontext() if settings.end_to_end else frozen(module.model.body_parameters())
    )
    with freeze:
        trainer.fit(module, train_dataloaders=datamodule.train_dataloader())
    return trainer.global_step


@contextlib.contextmanager
def frozen(params: list[torch.nn.Parameter]):
    """The body frozen while the head trains; its trainable set (what a peft run stores) restored."""
    trainable = [p for p in params if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def keep_weights(cfg, module) -> tuple[int, Path | None]:
    """(bytes stored, the file delete_checkpoints removes): as train.py keeps a run's weights."""
    from fewtune import peft

    out = Path(cfg.paths.output_dir)
    if peft.enabled(cfg.peft):
        path = peft.keep_task_weights(module, None, out, cfg.peft.name)
        peft.merge_if_asked(module.model, cfg.peft)
        return path.stat().st_size, None
    checkpoint = cfg.get("callbacks", {}).get("model_checkpoint") or {}
    path = (
        Path(checkpoint.get("dirpath") or out / "checkpoints")
        / f"{checkpoint.get('filename') or 'best'}.ckpt"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict()}, path)
    return path.stat().st_size, path


def _trainer(cfg, loggers: list, callbacks: list = (), **fit):
    """The config's Trainer (device, precision, ...). For a training phase (``fit``: its
    max_steps and max_epochs), no dev evaluation and no checkpoints, as the library trains, and
    a phase shorter than ``trainer.log_every_n_steps`` still logs its loss once."""
    from hydra.utils import instantiate

    from fewtune.run.progress import progress_callbacks

    if fit:
        fit.update(limit_val_batches=0, val_check_interval=1.0, check_val_every_n_epoch=1)
        if fit.get("max_steps", -1) > 0:
            every = cfg.trainer.get("log_every_n_steps") or 50  # Lightning's default
            fit["log_every_n_steps"] = min(every, fit["max_steps"])
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*callbacks, *progress_callbacks(cfg)],
        logger=loggers or False,
        enable_checkpointing=False,
        **fit,
    )
    if trainer.world_size > 1:
        raise FewtuneError(
            f"method={cfg.method.name} runs its phases one after another in one process; use trainer.devices=1"
        )
    return trainer
