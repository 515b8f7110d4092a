"""What a run checks before it loads any weights: its settings and its data.

Each mistake is one line (FewtuneError) that names the key, file or row at fault and the fix,
so that a bad value never costs a model's start-up first, and never ends in a traceback from
torch or Lightning or a metrics.json that looks complete (``trainer.max_steps=0``).
"""

from __future__ import annotations

import logging
from numbers import Real
from pathlib import Path

from omegaconf import DictConfig

from fewtune.data.tasks import Example, TaskSpec, check_k_shot
from fewtune.errors import FewtuneError

log = logging.getLogger("fewtune")
_warned: set[str] = set()  # a run may build several models from one config (PET): warn once


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def check_settings(cfg: DictConfig) -> None:
    """Learning rates, batch sizes, K and the number of steps."""
    _positive_number(cfg, "optimizer.lr", "e.g. optimizer.lr=1e-5")
    if cfg.get("peft") is not None and cfg.peft.get("lr") is not None:
        _positive_number(cfg, "peft.lr", "or peft.lr=null to use optimizer.lr")
    for key in ("batch_size", "eval_batch_size", "k"):
        _whole_number(cfg, key, lowest=1)
    trainer = cfg.get("trainer") or {}
    steps = trainer.get("max_steps", -1)
    if cfg.method.get("train", True) and steps is not None:
        if not isinstance(steps, int) or isinstance(steps, bool) or steps == 0 or steps < -1:
            raise FewtuneError(
                f"trainer.max_steps={steps}: method '{cfg.method.name}' trains, so give at least 1 step "
                "(-1: until trainer.max_epochs), or use method=zeroshot to evaluate without training"
            )
    every = trainer.get("val_check_interval")
    if every is not None and (isinstance(every, bool) or not isinstance(every, Real) or every <= 0):
        raise FewtuneError(
            f"trainer.val_check_interval={every}: give the steps between dev evaluations (e.g. 100), "
            "or a share of an epoch in (0, 1]"
        )


def check_accelerator(trainer) -> None:
    """A GPU run where torch sees no GPU, or fewer than it asks for."""
    from fewtune.run import hardware

    accelerator = trainer.get("accelerator", "auto")
    if not hardware.cuda_named(accelerator):
        return
    found, devices = hardware.visible_gpus(), trainer.get("devices", "auto")
    if not found:
        import torch

        raise FewtuneError(
            f"trainer.accelerator={accelerator}, but torch {torch.__version__} sees no CUDA GPU on this "
            "machine: add trainer.accelerator=cpu (or use trainer=cpu), or on a GPU machine install "
            "torch's CUDA build (make install TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cu128)"
        )
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > found:
        raise FewtuneError(
            f"trainer.devices={devices}, but torch sees {found} CUDA GPU(s) on this machine: "
            f"use trainer.devices={found} or fewer (-1: all of them)"
        )


def _value(cfg: DictConfig, key: str):
    node = cfg
    for part in key.split("."):
        node = node.get(part) if node is not None else None
    return node


def _positive_number(cfg: DictConfig, key: str, fix: str) -> None:
    value = _value(cfg, key)
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise FewtuneError(f"{key}={value}: a learning rate must be a number above 0; {fix}")


def _whole_number(cfg: DictConfig, key: str, lowest: int) -> None:
    value = _value(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise FewtuneError(f"{key}={value}: give a whole number of at least {lowest}")


def check_data(task: TaskSpec, folder: Path, data_dir, k: int, splits: dict[str, str]) -> None:
    """Read every split the run uses: unreadable rows, labels the task lacks, too few examples
    per class, a text field empty in every row are errors; a field empty in some rows and test
    examples that are also training examples are warnings."""
    read = {phase: task.read_split(folder, split, data_dir) for phase, split in splits.items()}
    for phase in ("train", "dev"):
        check_k_shot(task, read[phase], k, splits[phase])
    for phase, split in splits.items():
        _empty_fields(task, read[phase], task.split_path(split, folder, data_dir))
    _overlap(read["train"], read["test"], task.split_path(splits["test"], folder, data_dir))


def _empty_fields(task: TaskSpec, examples: list[Example], path: Path) -> None:
    for field in task.text_fields:
        empty = [ex.guid.rsplit("-", 1)[-1] for ex in examples if not ex.fields[field]]
        if len(empty) == len(examples):
            raise FewtuneError(
                f"{path}: field '{field}' is empty in every row; is columns.{field} of task '{task.name}' the right column?"
            )
        if empty:
            shown = ", ".join(empty[:5]) + (", ..." if len(empty) > 5 else "")
            _warn_once(
                f"{path}: field '{field}' is empty in {len(empty)} of {len(examples)} rows "
                f"(line{'s' if len(empty) > 1 else ''} {shown}): "
                "the template gets no text there; fill or remove them"
            )


def _overlap(train: list[Example], test: list[Example], path: Path) -> None:
    seen = {tuple(sorted(ex.fields.items())) for ex in train}
    shared = sum(tuple(sorted(ex.fields.items())) in seen for ex in test)
    if shared:
        _warn_once(
            f"{shared} of the {len(test)} test examples in {path} are also training examples (the same text): "
            "the test score counts them as unseen; remove them from the test set unless that is intended"
        )


def template_for(task: TaskSpec, family: str) -> str:
    """The task's template for the model's family (masked or causal)."""
    if family not in task.templates:
        raise FewtuneError(
            f"task '{task.name}' has no template for a {family} LM; add template.{family} to its config "
            f"(it has {sorted(task.templates)})"
        )
    return task.templates[family]
