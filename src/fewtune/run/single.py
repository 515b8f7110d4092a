"""The default run: one model, fitted (unless the method is zero-shot), tested with its best dev
checkpoint, its results written to metrics.json. ``train(cfg)`` runs this unless the method
names a runner of its own (run/methods.py).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from fewtune.run.results import METRICS_FILE, cost_record, count_parameters, run_identity

log = logging.getLogger("fewtune")


def run(cfg: DictConfig) -> dict:
    """Fit (unless the method is zero-shot), test with the best dev checkpoint, write metrics.json."""
    import hydra
    import pytorch_lightning as pl

    from fewtune.jobs import resume
    from fewtune.jobs.atomic import write_json_atomic
    from fewtune.models.shapes_met import ShapesMet
    from fewtune.predictions.recorder import PredictionRecorder
    from fewtune.predictions.run_files import write_run_predictions
    from fewtune.run import distributed, workers
    from fewtune.run.build import build, instantiate_group
    from fewtune.run.fit import fit, keep_best_weights
    from fewtune.run.loggers import close_loggers, run_loggers
    from fewtune.run.progress import progress_callbacks
    from fewtune.run.resources import StepTimer, peak_memory_mb, reset_peak_gpu_memory
    from fewtune.run.scored import ScoredExamples, smoke_mark
    from fewtune.scoring.calibration import calibrate_module

    start, cpu_start = time.perf_counter(), time.process_time()
    out = Path(cfg.paths.output_dir)
    workers.require_own_process()  # the seed and the backbone cache are per process
    job = resume.Job(cfg)
    if (done := job.start()) is not None:  # complete for this config: nothing to load
        return done
    pl.seed_everything(cfg.seed, workers=True)
    reset_peak_gpu_memory()
    datamodule, module = build(cfg)
    calibration = calibrate_module(cfg, module, datamodule)  # None unless method.calibrate=true
    trainable, total = count_parameters(module)  # before a merge folds the adapters away

    train_it = bool(cfg.method.train)
    step_timer = StepTimer()
    callbacks = (
        [*instantiate_group(cfg.get("callbacks")), step_timer, *job.callbacks()] if train_it else []
    )
    scored = ScoredExamples()
    shapes = ShapesMet()  # distinct input shapes, for metrics.json
    recorder = PredictionRecorder()  # each dev and test example's prediction: predictions/*.parquet
    callbacks += [scored, shapes, *progress_callbacks(cfg), recorder]
    loggers = run_loggers(cfg)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    distributed.prepare(trainer)  # before fit starts the other DDP processes

    if train_it:
        best_dev, ckpt_path = fit(trainer, module, datamodule, job)
    else:
        (dev,) = trainer.validate(module, datamodule=datamodule, verbose=False)
        best_dev, ckpt_path = dev[f"val/{cfg.task.metric}"], None
    ckpt_path, stored = keep_best_weights(cfg, module, ckpt_path, out, trainer.strategy)
    test_split = datamodule.sources["test"]
    if test_split != "test":
        log.warning(
            "test_split=%s: the test metrics are on the %s split, not the test set",
            test_split,
            test_split,
        )
    trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    if train_it:  # the dev predictions of the tested weights (fit's dev evaluations are not kept)
        trainer.validate(module, datamodule=datamodule, verbose=False)

    costs = {
        **cost_record(trainable, total, stored, step_timer.mean_s),
        **shapes.record(),
        **peak_memory_mb(),
    }
    results = {
        **run_identity(cfg),
        "test": {name.removeprefix("test/"): v for name, v in module.test_results.items()},
        "test_split": test_split,
        "best_dev": best_dev,
        **(calibration or {}),
        **scored.record(len(datamodule.encoded["test"])),
        "steps": trainer.global_step,
        "precision": str(trainer.precision),  # as resolved: experiment=cpu picks it by hardware
        "wall_time_s": round(time.perf_counter() - start, 2),
        "cpu_time_s": round(time.process_time() - cpu_start, 2),  # all the process's threads
        **costs,
        **job.record(),
    }
    predictions = {}
    if trainer.is_global_zero:  # under DDP, one process writes the run's files
        predictions = write_run_predictions(
            out, recorder, datamodule
        )  # before metrics.json marks the run complete
        write_json_atomic(out / METRICS_FILE, results)
        job.finish()
    close_loggers(loggers, costs, trainer.global_step, predictions)
    if cfg.get("delete_checkpoints") and ckpt_path and trainer.is_global_zero:
        Path(ckpt_path).unlink(missing_ok=True)
    metric = cfg.task.metric
    log.info(
        "%s test %s = %.4f (best dev %s)%s",
        cfg.task.name,
        metric,
        results["test"][metric],
        best_dev,
        smoke_mark(results),
    )
    return results
