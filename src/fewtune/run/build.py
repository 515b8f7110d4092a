"""The pieces of a run from a composed config: ``build(cfg)`` gives the datamodule and the
LightningModule; ``instantiate_group`` the config group's callbacks or loggers.

Every tool that runs a model (train, evaluate, exits, the word search, the playground, PET,
the benchmark) builds it here, so a run and its re-test are assembled the same way.
"""

from __future__ import annotations

from omegaconf import DictConfig

from fewtune.errors import FewtuneError


def build(cfg: DictConfig):
    """The pieces of a run: (datamodule, LightningModule). Cheap checks come before loading weights."""
    from functools import partial

    from hydra.utils import instantiate

    from fewtune import peft
    from fewtune.data.datamodule import FewShotDataModule
    from fewtune.data.demo_datamodule import DemoDataModule
    from fewtune.data.demonstrations import DemoSettings
    from fewtune.data.encoding import PlainEncoder, PromptEncoder
    from fewtune.data.lengths import LengthLadder
    from fewtune.data.prompts import Template
    from fewtune.data.tasks import TaskSpec
    from fewtune.data.verbalizers import Verbalizer
    from fewtune.exits.modules import make_module
    from fewtune.exits.rules import from_run as exit_settings
    from fewtune.models import attention, backbones
    from fewtune.models.classifier_head import ClassifierModule
    from fewtune.models.demo_head import DemoPromptModule
    from fewtune.models.device_defaults import pack_setting
    from fewtune.models.prompt_head import PromptModule
    from fewtune.models.seeded_init import drawn_on_cpu
    from fewtune.models.sentence_encoder import load_encoder
    from fewtune.run import checks
    from fewtune.run.hardware import cuda_selected
    from fewtune.run.methods import load_function
    from fewtune.words.searched import task_config

    checks.check_settings(cfg)
    checks.check_accelerator(cfg.trainer)
    method = cfg.method
    if method.get("builder"):  # a method with a module of its own (method=setfit)
        return load_function(method.builder, f"method '{method.name}': builder")(cfg)
    if method.head not in ("lm", "classifier"):
        raise FewtuneError(
            f"method '{method.name}': head '{method.head}' is unknown; use lm or classifier"
        )
    peft.check(cfg.peft, method)
    task = TaskSpec.from_config(
        task_config(cfg)
    )  # method=prompt-autowords: the searched label words
    exits = exit_settings(cfg, task.regression)  # None: exit=none
    test_split = cfg.get("test_split", "test")
    # the ladders of training and evaluation lengths (data/lengths.py); auto: per device
    lengths, eval_lengths = LengthLadder.from_config(
        cfg.get("shapes"), cuda_selected(cfg.trainer.accelerator)
    )
    # Fail on missing data before loading weights.
    folder = task.check_files(
        cfg.paths.data_dir, cfg.k, cfg.data_seed, ("train", "dev", test_split)
    )
    checks.check_data(
        task,
        folder,
        cfg.paths.data_dir,
        cfg.k,
        {"train": "train", "dev": "dev", "test": test_split},
    )
    spec = backbones.resolve(cfg.model, cfg.paths.cache_dir)
    demos = DemoSettings.from_method(
        method, causal=spec.family == "causal"
    )  # None: no demonstrations
    if method.head == "lm":
        backbones.require_lm_head(spec)  # before the tokenizer and weights are loaded
    pooling = classifier_pooling(method, spec, exits)  # None: the classifier class's own
    tokenizer = backbones.load_tokenizer(spec)
    optim = dict(
        # a peft method trains few weights from scratch: it brings its own learning rate (peft.lr)
        optimizer=instantiate(
            cfg.optimizer, **({"lr": cfg.peft.lr} if cfg.peft.get("lr") is not None else {})
        ),
        scheduler=instantiate(cfg.scheduler),
        metric=task.metric,
        regression=task.regression,
        trained_only_checkpoints=peft.enabled(cfg.peft),
        pack_training=pack_setting(cfg.get("pack_training", "auto")),  # models/device_defaults.py
        lengths=lengths,
        sdpa_backends=attention.check(cfg.get("sdpa_backends", "auto")),  # models/attention.py
    )
    # peft changes the backbone in place: such a run gets a model of its own, not the one reused across jobs.
    reuse = not peft.enabled(cfg.peft)
    tune = dict(
        tokenizer=tokenizer,
        template=task.templates.get(spec.family, ""),
        max_length=task.max_length,
    )

    if method.head == "lm":
        template = Template(checks.template_for(task, spec.family))
        template.check(task.text_fields, causal=spec.family == "causal", task=task.name)
        encoder = PromptEncoder(
            tokenizer, template, Verbalizer.of_task(task), task.max_length, spec.family == "causal"
        )
        if exits is not None:  # an exit reads each word's logit at the slot of an inner layer
            encoder.require_single_tokens("early exit")
        with drawn_on_cpu(cfg.seed):  # new weights (adapters, soft prompts) the same on any device
            model = peft.apply(
                cfg.peft, backbones.load_model(spec, "lm", reuse=reuse), "lm", **tune
            )
        if demos is None:
            module = make_module(PromptModule, exits, model, encoder.label_words, **optim)
        else:  # averages the predictions over several demonstration sets
            module = DemoPromptModule(model, encoder.label_words, demos.average, **optim)
    else:
        encoder = PlainEncoder(tokenizer, task.text_fields, task.max_length)
        with drawn_on_cpu(cfg.seed):  # the new head (and adapters) the same on any device
            model = backbones.load_model(
                spec, "classifier", task.num_outputs, tokenizer.pad_token_id
            )
            model = peft.apply(cfg.peft, model, "classifier", **tune)
        head = dict(pooling=pooling, head_lr=method.get("head_lr"))
        module = make_module(ClassifierModule, exits, model, task.num_outputs, **head, **optim)

    data_module = FewShotDataModule
    if demos is not None:  # each query with demonstrations from the training set
        data_module = partial(
            DemoDataModule,
            settings=demos,
            seed=cfg.seed,
            cache_dir=cfg.paths.cache_dir,
            load_embed=load_encoder,
        )
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
        lengths=lengths,
        eval_lengths=eval_lengths,
    )
    return datamodule, module


def classifier_pooling(method, spec, exits):
    """method.pooling for the classifier head: None where it is ``model`` (or unset), the class's own."""
    from fewtune.models.pooling import resolve

    setting = method.get("pooling") or "model"
    if method.head != "classifier" or setting == "model":
        return None
    if exits is not None:
        raise FewtuneError(
            "early exit reads the classifier class's own pooling: use method.pooling=model, or exit=none"
        )
    return resolve(setting, spec.path, spec.family)


def instantiate_group(group) -> list:
    """The objects of a config group whose entries each have a ``_target_`` (callbacks, logger)."""
    from hydra.utils import instantiate

    if not group:
        return []
    return [instantiate(c) for c in group.values() if c is not None and "_target_" in c]
