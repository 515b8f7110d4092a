"""The training entry point: compose a config with Hydra, fit, test with the best dev
checkpoint, write metrics.json.

``train(cfg)`` does the work and is what the tests call with a composed config;
``main`` is the thin Hydra wrapper that turns user errors into one line.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from fewtune.config import CONF_DIR
from fewtune.errors import FewtuneError
from fewtune.results import FAILED_FILE, METRICS_FILE, count_parameters, run_identity, write_json_atomic

log = logging.getLogger("fewtune")


def build(cfg: DictConfig):
    """The pieces of a run: (datamodule, LightningModule). Cheap checks come before loading weights."""
    from functools import partial

    from hydra.utils import instantiate

    from fewtune import peft
    from fewtune.data.datamodule import FewShotDataModule
    from fewtune.data.demo_datamodule import DemoDataModule
    from fewtune.data.demonstrations import DemoSettings
    from fewtune.data.encoding import PlainEncoder, PromptEncoder
    from fewtune.data.prompts import Template, Verbalizer
    from fewtune.data.tasks import TaskSpec
    from fewtune.models import backbones
    from fewtune.models.classifier_head import ClassifierModule
    from fewtune.models.demo_head import DemoPromptModule
    from fewtune.models.exit_rules import from_run as exit_settings
    from fewtune.models.exits import make_module
    from fewtune.models.prompt_head import PromptModule
    from fewtune.searched_words import task_config

    method = cfg.method
    if method.head not in ("lm", "classifier"):
        raise FewtuneError(f"method '{method.name}': head '{method.head}' is unknown; use lm or classifier")
    peft.check(cfg.peft, method)
    task = TaskSpec.from_config(task_config(cfg))  # method=prompt-autowords: the searched label words
    exits = exit_settings(cfg, task.regression)  # None: exit=none
    test_split = cfg.get("test_split", "test")
    # Fail on missing data before loading weights.
    task.check_files(cfg.paths.data_dir, cfg.k, cfg.data_seed, ("train", "dev", test_split))
    spec = backbones.resolve(cfg.model, cfg.paths.cache_dir)
    demos = DemoSettings.from_method(method, causal=spec.family == "causal")  # None: no demonstrations
    if method.head == "lm":
        backbones.require_lm_head(spec)  # before the tokenizer and weights are loaded
    tokenizer = backbones.load_tokenizer(spec)
    optim = dict(
        # a peft method trains few weights from scratch: it brings its own learning rate (peft.lr)
        optimizer=instantiate(cfg.optimizer, **({"lr": cfg.peft.lr} if cfg.peft.get("lr") is not None else {})),
        scheduler=instantiate(cfg.scheduler),
        metric=task.metric,
        regression=task.regression,
        trained_only_checkpoints=peft.enabled(cfg.peft),
        pack_training=cfg.get("pack_training", True),
    )
    # peft changes the backbone in place: such a run gets a model of its own, not the one reused across jobs.
    reuse = not peft.enabled(cfg.peft)
    tune = dict(tokenizer=tokenizer, template=task.templates.get(spec.family, ""), max_length=task.max_length)

    if method.head == "lm":
        template = Template(task.templates[spec.family])
        template.check(task.text_fields, causal=spec.family == "causal", task=task.name)
        encoder = PromptEncoder(tokenizer, template, Verbalizer.of_task(task), task.max_length, spec.family == "causal")
        if exits is not None:  # an exit reads each word's logit at the slot of an inner layer
            encoder.require_single_tokens("early exit")
        model = peft.apply(cfg.peft, backbones.load_model(spec, "lm", reuse=reuse), "lm", **tune)
        if demos is None:
            module = make_module(PromptModule, exits, model, encoder.label_words, **optim)
        else:  # averages the predictions over several demonstration sets
            module = DemoPromptModule(model, encoder.label_words, demos.average, **optim)
    else:
        encoder = PlainEncoder(tokenizer, task.text_fields, task.max_length)
        model = backbones.load_model(spec, "classifier", task.num_outputs, tokenizer.pad_token_id)
        model = peft.apply(cfg.peft, model, "classifier", **tune)
        module = make_module(ClassifierModule, exits, model, task.num_outputs, **optim)

    data_module = FewShotDataModule
    if demos is not None:  # each query with demonstrations from the training set
        data_module = partial(DemoDataModule, settings=demos, seed=cfg.seed, cache_dir=cfg.paths.cache_dir)
    datamodule = data_module(
        task,
        encoder,
        pad_id=tokenizer.pad_token_id,
        data_dir=cfg.paths.data_dir,
        k=cfg.k,
        data_seed=cfg.data_seed,
        batch_size=cfg.batch_size,
        eval_batch_size=cfg.eval_batch_size,
        test_split=test_split,
    )
    return datamodule, module


def _instantiate_all(group) -> list:
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]


def keep_best_weights(cfg: DictConfig, module, ckpt_path: str | None, out: Path, strategy=None) -> tuple[str | None, int]:
    """What a run keeps of its best dev step, and its size on disk. With peft, the trained weights
    alone, loaded into the module (and merged if asked): no checkpoint is left to load. Without,
    the best checkpoint itself."""
    from fewtune import peft

    if peft.enabled(cfg.peft):
        stored = peft.keep_task_weights(module, ckpt_path, out, cfg.peft.name, strategy).stat().st_size
        peft.merge_if_asked(module.model, cfg.peft)
        return None, stored
    return ckpt_path, Path(ckpt_path).stat().st_size if ckpt_path else 0


def train(cfg: DictConfig) -> dict:
    """Fit (unless the method is zero-shot), test with the best dev checkpoint, write metrics.json."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from fewtune import distributed, resume, workers
    from fewtune.calibration import calibrate_module
    from fewtune.predictions.recorder import PredictionRecorder
    from fewtune.predictions.run_files import log_predictions, write_run_predictions
    from fewtune.progress_bars import progress_callbacks
    from fewtune.resources import StepTimer, peak_memory_mb, reset_peak_gpu_memory

    if cfg.method.name == "pet":  # several prompt models, their ensemble and its distillation
        from fewtune.pet.run import train_pet

        return train_pet(cfg)
    start = time.perf_counter()
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
    callbacks = [*_instantiate_all(cfg.get("callbacks")), step_timer, *job.callbacks()] if train_it else []
    recorder = PredictionRecorder()  # every dev and test example's prediction: predictions/*.parquet
    callbacks += [*progress_callbacks(cfg), recorder]
    loggers = _instantiate_all(cfg.get("logger"))
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    distributed.prepare(trainer)  # before fit starts the other DDP processes

    best_ckpts = (c for c in callbacks if isinstance(c, ModelCheckpoint) and not isinstance(c, resume.ResumeCheckpoint))
    checkpoint = next(best_ckpts, None)
    if train_it:
        trainer.fit(module, datamodule=datamodule, ckpt_path=job.resume_from(module))
        best_dev = float(checkpoint.best_model_score) if checkpoint and checkpoint.best_model_score is not None else None
        ckpt_path = checkpoint.best_model_path if checkpoint and checkpoint.best_model_path else None
        ckpt_path = job.best_checkpoint(ckpt_path, module)
        if ckpt_path is None and not job.resumed_from:
            log.warning("no dev evaluation happened (max_steps < val_check_interval?): testing the last weights")
    else:
        (dev,) = trainer.validate(module, datamodule=datamodule, verbose=False)
        best_dev, ckpt_path = dev[f"val/{cfg.task.metric}"], None
    ckpt_path, stored = keep_best_weights(cfg, module, ckpt_path, out, trainer.strategy)
    test_split = datamodule.sources["test"]
    if test_split != "test":
        log.warning("test_split=%s: the test metrics are on the %s split, not the test set", test_split, test_split)
    trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    if train_it:  # the dev predictions of the tested weights (fit's dev evaluations are not kept)
        trainer.validate(module, datamodule=datamodule, verbose=False)

    costs = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": round(trainable / total, 6),
        "task_storage_bytes": stored,
        "step_time_s": step_timer.mean_s,
        **peak_memory_mb(),
    }
    results = {
        **run_identity(cfg),
        "test": {name.removeprefix("test/"): v for name, v in module.test_results.items()},
        "test_split": test_split,
        "best_dev": best_dev,
        **(calibration or {}),
        "steps": trainer.global_step,
        "precision": str(trainer.precision),  # as resolved: experiment=cpu picks it by hardware
        "wall_time_s": round(time.perf_counter() - start, 2),
        **costs,
        **job.record(),
    }
    predictions = {}
    if trainer.is_global_zero:  # under DDP, one process writes the run's files
        predictions = write_run_predictions(out, recorder, datamodule)  # before metrics.json marks the run complete
        write_json_atomic(out / METRICS_FILE, results)
        job.finish()
    for logger in loggers:
        logger.log_metrics({f"cost/{name}": v for name, v in costs.items() if v is not None}, step=trainer.global_step)
        log_predictions([logger], predictions)  # W&B: as tables
        logger.save()
    if cfg.get("delete_checkpoints") and ckpt_path and trainer.is_global_zero:
        Path(ckpt_path).unlink(missing_ok=True)
    metric = cfg.task.metric
    log.info("%s test %s = %.4f (best dev %s)", cfg.task.name, metric, results["test"][metric], best_dev)
    return results


def _finish_wandb() -> None:
    # One W&B run per job: without this, the jobs of a multirun merge into one run.
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from fewtune.distributed import write_json_on_rank_zero

    out = Path(cfg.paths.output_dir)
    try:
        results = train(cfg)
        return results["test"][cfg.task.metric]
    except FewtuneError as err:
        write_json_on_rank_zero(out / FAILED_FILE, {"error": str(err)})
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("job failed: %s", err)  # the other jobs go on; the table reports this one
            return None
        raise SystemExit(f"error: {err}") from None
    except BaseException as err:
        write_json_on_rank_zero(out / FAILED_FILE, {"error": f"{type(err).__name__}: {err}"})
        raise
    finally:
        _finish_wandb()


if __name__ == "__main__":
    main()
