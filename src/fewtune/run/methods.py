"""A method's own code, named in its config: how methods that are more than one training run
(PET/iPET, SetFit) plug in without the core checking their names.

A method's yaml (conf/method/<name>.yaml) may name, as dotted paths to functions:

    runner: fewtune.pet.run.train_pet        # (cfg) -> results dict; replaces the default run
    table_rows: fewtune.pet.table_rows.pet_rows  # (report.runs.Run) -> list of Run: its table rows
    evaluate: fewtune.pet.run.refuse_evaluate    # (run_dir, cfg) -> None or raise: before a re-test
    predict: fewtune.pet.apply.predict_texts     # (cfg, run_dir, examples) -> (probs, labels): fewtune.predict

and may list ``task_keys``: the task config's keys only it reads (PET's ``pet_templates``). A
run's config hash leaves out the task keys that some method claims and its own does not, so
that adding, say, patterns to a task does not rerun the jobs of other methods.

``train(cfg)`` runs ``method.runner``, or without one ``run/single.py``'s run: one model,
fitted, tested with its best dev checkpoint, written to metrics.json. A runner writes
metrics.json itself, with at least ``test`` ({metric: value}) and ``best_dev``, which the
table reads. A method with a runner but no ``evaluate`` hook is not re-tested by
``python -m fewtune.evaluate``.

Runs saved before their method named its hooks get them from today's conf/method/<name>.yaml,
so that archived runs in results/ table and evaluate as new ones do. None of these keys
changes what a run computes: the config hash leaves them out (jobs/resume.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fewtune.errors import FewtuneError

HOOKS = ("runner", "table_rows", "evaluate", "predict")
PLUGIN_KEYS = (*HOOKS, "task_keys")
DEFAULT_RUNNER = "fewtune.run.single.run"


def train(cfg: DictConfig) -> dict:
    """Run the job the config describes (the method's runner, or one model) and return its results."""
    from fewtune.run.checks import check_settings
    from fewtune.run.hardware import keep_freed_host_memory

    check_settings(cfg)  # before any runner loads anything
    keep_freed_host_memory(
        cfg.get("host_memory", "keep")
    )  # glibc keeps freed memory (run/hardware.py)
    return runner(cfg.method)(cfg)


def runner(method) -> Callable[[DictConfig], dict]:
    return hook(method, "runner") or load_function(DEFAULT_RUNNER, "the default runner")


def hook(method, name: str) -> Callable | None:
    """The function the method names under ``name`` (one of HOOKS), or None."""
    path = plugin_settings(method).get(name)
    return load_function(path, f"method '{_name(method)}': {name}") if path else None


def plugin_settings(method) -> dict[str, Any]:
    """The method's plug-in keys: its own, and those it lacks from conf/method/<name>.yaml (a run
    saved before the method named them, or before a hook existed: a PET run and ``predict``)."""
    own = _as_dict(method)
    packaged = dict(_packaged_settings(_name(method)))
    return {**packaged, **{key: own[key] for key in PLUGIN_KEYS if key in own}}


def claimed_task_keys() -> set[str]:
    """Task keys that some packaged method reads and others do not (``task_keys``)."""
    from fewtune.config import CONF_DIR

    claimed: set[str] = set()
    for path in sorted((CONF_DIR / "method").glob("*.yaml")):
        claimed.update(dict(_packaged_settings(path.stem)).get("task_keys") or ())
    return claimed


def load_function(path: str, what: str) -> Callable:
    module_name, _, attribute = str(path).rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise FewtuneError(
            f"{what} '{path}' cannot be imported ({err}); give a dotted path module.function"
        ) from None
    if not callable(function):
        raise FewtuneError(f"{what} '{path}' is not a function")
    return function


@cache
def _packaged_settings(name: str) -> tuple:
    from fewtune.config import CONF_DIR

    path = CONF_DIR / "method" / f"{name}.yaml"
    if not name or not path.is_file():
        return ()
    saved = OmegaConf.to_container(OmegaConf.load(path))
    return tuple((key, saved[key]) for key in PLUGIN_KEYS if key in saved)


def _as_dict(method) -> dict:
    if isinstance(method, DictConfig):
        return OmegaConf.to_container(method, resolve=False)
    return dict(method or {})


def _name(method) -> str:
    return str(_as_dict(method).get("name") or "")
