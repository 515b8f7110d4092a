"""method=setfit's pieces, as ``train.build`` returns them for other methods (``method.builder``):
the K-shot datamodule (the raw text, as method=finetune reads it) and ``SetFitModule``. The
training run and ``python -m fewtune.evaluate`` both build through here."""

from __future__ import annotations

from omegaconf import OmegaConf

from fewtune.setfit.settings import SetFitSettings, check_combination


def build(cfg):
    from fewtune import peft
    from fewtune.data.datamodule import FewShotDataModule
    from fewtune.data.encoding import PlainEncoder
    from fewtune.data.lengths import LengthLadder
    from fewtune.data.tasks import TaskSpec
    from fewtune.models import backbones
    from fewtune.models.pooling import resolve
    from fewtune.run.hardware import cuda_selected
    from fewtune.setfit.model import SentenceModel, SetFitModule

    settings = SetFitSettings.from_config(cfg.method)
    peft.check(cfg.peft, cfg.method)
    task = TaskSpec.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    check_combination(cfg, task.regression)
    # Every SetFit batch is a padded one, pairs and head included: all follow the evaluation
    # ladder's rule (auto: on a GPU, not on the CPU, where padding to it made the contrastive
    # steps up to 12% slower and saved little: 6-8 lengths a run without it; docs/performance.md).
    _, ladder = LengthLadder.from_config(cfg.get("shapes"), cuda_selected(cfg.trainer.accelerator))
    test_split = cfg.get("test_split", "test")
    task.check_files(cfg.paths.data_dir, cfg.k, cfg.data_seed, ("train", "dev", test_split))
    spec = backbones.resolve(cfg.model, cfg.paths.cache_dir)
    pooling = resolve(settings.pooling, spec.path, spec.family, settings.normalize)
    tokenizer = backbones.load_tokenizer(spec)
    model = SentenceModel(backbones.load_model(spec, "body"), pooling, task.num_outputs)
    model = peft.apply(
        cfg.peft, model, "classifier", tokenizer=tokenizer, template="", max_length=task.max_length
    )
    module = SetFitModule(
        model,
        task.num_outputs,
        settings,
        metric=task.metric,
        trained_only_checkpoints=peft.enabled(cfg.peft),
    )
    datamodule = FewShotDataModule(
        task,
        PlainEncoder(tokenizer, task.text_fields, task.max_length),
        pad_id=tokenizer.pad_token_id,
        data_dir=cfg.paths.data_dir,
        k=cfg.k,
        data_seed=cfg.data_seed,
        batch_size=settings.head_batch_size,
        eval_batch_size=cfg.eval_batch_size,
        test_split=test_split,
        lengths=ladder,
        eval_lengths=ladder,
    )
    return datamodule, module
