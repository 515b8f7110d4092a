"""Label words from ``python -m fewtune.search_words`` as a run's verbalizer: ``method=prompt-autowords``.

A method with ``searched_words: <folder>`` (the search's ``search.out``) trains with the words the
search chose for the run's task, K and data seed, read from
``<folder>/<task>-<k>-<data_seed>/metrics.json`` when the run is built. The file is one of the
run's inputs, as its data files are: its md5 is in the config hash (a new search reruns the
jobs) and in the provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from fewtune.errors import FewtuneError
from fewtune.run.results import METRICS_FILE, read_json_object


def results_folder(out: str | Path, task: str, k: int, data_seed: int) -> Path:
    """Where the search writes the results of one task, K and data seed."""
    return Path(out) / f"{task}-{k}-{data_seed}"


def searched_words_file(cfg) -> Path | None:
    """The search results the run's method reads its label words from; None when it reads none."""
    folder = cfg.method.get("searched_words")
    if not folder:
        return None
    path = results_folder(folder, cfg.task.name, cfg.k, cfg.data_seed) / METRICS_FILE
    if not path.is_file():
        raise FewtuneError(
            f"method '{cfg.method.name}': no searched label words at {path}; run "
            f"`python -m fewtune.search_words task={cfg.task.name} model={cfg.model.name} k={cfg.k} seed={cfg.data_seed}` "
            "first, or set method.searched_words to the search's folder (its search.out)"
        )
    return path


def task_config(cfg) -> dict[str, Any]:
    """The run's task config as a dict, with the searched words as its verbalizer where the method asks."""
    task = OmegaConf.to_container(cfg.task, resolve=True)
    path = searched_words_file(cfg)
    if path is None:
        return task
    results = read_json_object(
        path, f"run python -m fewtune.search_words task={cfg.task.name} ... again"
    )
    if not isinstance(results.get("verbalizer"), dict):
        raise FewtuneError(
            f"{path} has no 'verbalizer' of searched words; run python -m fewtune.search_words again"
        )
    if results.get("model") != cfg.model.name:
        raise FewtuneError(
            f"method '{cfg.method.name}': the label words in {path} were searched with model '{results.get('model')}', "
            f"but this run uses '{cfg.model.name}'; search with model={cfg.model.name} into another folder "
            "(search.out=...) and point method.searched_words there"
        )
    return {**task, "verbalizer": results["verbalizer"]}
