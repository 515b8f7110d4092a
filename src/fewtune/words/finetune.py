"""The last step of LM-BFF's automatic label-word search: prompt-based fine-tuning with each of
the top assignments (ranked by zero-shot dev accuracy), keeping the one that is best on dev.

    python -m fewtune.search_words task=sst2 seed=42 search.finetune=3 experiment=cpu

Each candidate is an ordinary run of ``train(cfg)`` with the search's overrides (the method,
method=prompt unless one is given, and its training settings) and the candidate's words as the
task's verbalizer, in ``<search folder>/finetune/candidate-<rank>/`` (rank 0: the best zero-shot).
A rerun skips the candidates whose metrics.json is complete for the same config (fewtune/jobs/resume.py).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from omegaconf import DictConfig, open_dict

from fewtune.errors import FewtuneError

log = logging.getLogger("fewtune")

CANDIDATES_DIR = "finetune"


def finetune_config(overrides: list[str], verbalizer: dict[str, str], folder: Path) -> DictConfig:
    """The run config of ``python -m fewtune.train <overrides>`` with ``verbalizer`` as the task's
    label words, writing into ``folder``."""
    from hydra import compose, initialize_config_dir

    from fewtune.config import CONF_DIR

    given = {o.lstrip("+~").split("=", 1)[0] for o in overrides}
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train", overrides=[*([] if "logger" in given else ["logger=none"]), *overrides]
        )
    method = cfg.method
    if method.head != "lm" or not method.train:
        raise FewtuneError(
            f"search.finetune fine-tunes a prompt with each candidate's words, and method '{method.name}' does not; "
            "use method=prompt (the default) or method=prompt-demo"
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder)
        cfg.task.verbalizer = dict(verbalizer)
        if "searched_words" in method:  # the candidate's words, not an earlier search's
            method.searched_words = None
    return cfg


def best_on_dev(assignments: list[dict]) -> int:
    """The index of the candidate with the best fine-tuned dev metric; a tie keeps the better zero-shot rank."""
    return max(range(len(assignments)), key=lambda i: (_or_lowest(assignments[i]["best_dev"]), -i))


def _or_lowest(value: float | None) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def finetune_assignments(overrides: list[str], results: dict, folder: Path) -> None:
    """Fine-tune every assignment in ``results["assignments"]``, record each one's folder, best dev
    and test metrics there, and make the best on dev the results' ``verbalizer``."""
    from fewtune.run.loggers import finish_wandb
    from fewtune.run.methods import train

    assignments = results["assignments"]
    for rank, candidate in enumerate(assignments):
        sub = folder / CANDIDATES_DIR / f"candidate-{rank}"
        words = " / ".join(candidate["verbalizer"].values())
        log.info(
            "label-word search: fine-tuning candidate %d/%d (%s) in %s",
            rank + 1,
            len(assignments),
            words,
            sub,
        )
        try:
            metrics = train(finetune_config(overrides, candidate["verbalizer"], sub))
        finally:
            finish_wandb()  # one W&B run per candidate, as per job
        candidate.update(
            folder=str(sub.relative_to(folder)), best_dev=metrics["best_dev"], test=metrics["test"]
        )
    chosen = assignments[best_on_dev(assignments)]
    results.update(
        verbalizer=chosen["verbalizer"],
        dev_acc=chosen["zeroshot_dev_acc"],
        chosen_by=f"fine-tuned dev {results['metric']}",
        best_dev=chosen["best_dev"],
        test=chosen["test"],
    )
