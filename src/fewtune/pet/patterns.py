"""PET's pattern-verbalizer pairs: the task config's ``pet_templates``, one list per model family.

    pet_templates:
      masked:
        - "{sentence} It was {mask} ."
        - "It was {mask} . {sentence}"
        - template: "Just {mask} ! {sentence}"          # a pattern with label words of its own
          verbalizer: {"0": bad, "1": good}
      causal:
        - "{sentence} It was {mask}"

A pattern is an ordinary template (data/prompts.py renders it, as ``template`` is rendered);
its verbalizer is the task's own unless the entry gives one. Each pattern's model is built from
the run's config with ``task.template`` (and ``task.verbalizer``) swapped: ``pattern_config``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from fewtune.data.prompts import Template
from fewtune.data.tasks import TaskSpec
from fewtune.data.verbalizers import Verbalizer
from fewtune.errors import FewtuneError

KEY = "pet_templates"


@dataclass(frozen=True)
class Pattern:
    template: str
    verbalizer: Mapping[str, Any] | None = None  # None: the task's own label words

    def record(self) -> dict:
        """What metrics.json says about the pattern."""
        return {
            "template": self.template,
            **({"verbalizer": dict(self.verbalizer)} if self.verbalizer else {}),
        }


def task_patterns(cfg: DictConfig, task: TaskSpec, family: str) -> list[Pattern]:
    """The patterns for a model family, each checked as a template and verbalizer of the task."""
    where = f"conf/task/{task.name}.yaml"
    listed = cfg.task.get(KEY)
    if not listed:
        raise FewtuneError(
            f"method=pet needs several templates, and task '{task.name}' has no {KEY}: add "
            f"'{KEY}: {{masked: [...], causal: [...]}}' (a list of templates per model family) to {where}"
        )
    entries = OmegaConf.to_container(listed, resolve=True).get(family)
    if not entries:
        raise FewtuneError(
            f"method=pet: task '{task.name}' has no {KEY} for {family} LMs; add a list {KEY}.{family} to {where}"
        )
    patterns = [_pattern(task, entry, i) for i, entry in enumerate(entries)]
    for pattern in patterns:
        Template(pattern.template).check(
            task.text_fields, causal=family == "causal", task=task.name
        )
        words = pattern.verbalizer or task.verbalizer
        Verbalizer(words, task.answer_keys, task.verbalizer_reduce, task.multi_token)
    return patterns


def _pattern(task: TaskSpec, entry: Any, index: int) -> Pattern:
    if isinstance(entry, str):
        return Pattern(entry)
    if (
        isinstance(entry, Mapping)
        and isinstance(entry.get("template"), str)
        and set(entry) <= {"template", "verbalizer"}
    ):
        verbalizer = entry.get("verbalizer")
        if verbalizer is not None and set(map(str, verbalizer)) != set(task.answer_keys):
            raise FewtuneError(
                f"task '{task.name}' {KEY} entry {index}: its verbalizer's labels {sorted(map(str, verbalizer))} "
                f"differ from the task's labels {list(task.answer_keys)}"
            )
        return Pattern(
            entry["template"],
            {str(k): v for k, v in verbalizer.items()} if verbalizer is not None else None,
        )
    raise FewtuneError(
        f"task '{task.name}' {KEY} entry {index} is {entry!r}: write a template string, or "
        "{template: '...', verbalizer: {label: word}}"
    )


def pattern_config(cfg: DictConfig, pattern: Pattern, family: str, folder: Path) -> DictConfig:
    """The run's config with the pattern as the task's template, writing into ``folder``:
    ``run.build.build`` then makes exactly the model method=prompt would make with that template."""
    sub = copy.deepcopy(cfg)
    with open_dict(sub):
        sub.paths.output_dir = str(folder)
        sub.method.head = "lm"
        sub.task.template[family] = pattern.template
        if pattern.verbalizer is not None:
            sub.task.verbalizer = dict(pattern.verbalizer)
    return sub


def classifier_config(cfg: DictConfig, folder: Path) -> DictConfig:
    """The run's config for method=finetune's classifier head, writing into ``folder``."""
    sub = copy.deepcopy(cfg)
    with open_dict(sub):
        sub.paths.output_dir = str(folder)
        sub.method.head = "classifier"
    return sub
