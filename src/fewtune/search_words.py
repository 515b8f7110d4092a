"""LM-BFF's automatic label-word search:

    python -m fewtune.search_words task=sst2 k=16 seed=42 search.top_k=10 [search.finetune=3]

For each class, the ``top_k`` one-token words with the highest probability at the slot,
averaged over that class's training examples (the untrained model); then every assignment of
one candidate per class (the first ``top_n`` of each, LM-BFF's pruning) is scored by zero-shot
dev accuracy. With ``finetune=N``, the N best assignments are each fine-tuned as a run of
``train(cfg)`` and the best on dev is kept (LM-BFF's last step, words/finetune.py). The chosen
words go to ``<out>/<task>-<k>-<data_seed>/metrics.json`` as ``verbalizer``, which
``method=prompt-autowords`` reads (words/searched.py). The other arguments are the run's
overrides, as for ``fewtune.train``; ``method...`` ones are for the fine-tuning only (the search
itself scores the untrained prompt).
"""

from __future__ import annotations

import json
import os
import sys

from fewtune.errors import FewtuneError
from fewtune.words.search import search

SETTINGS = ("top_k", "top_n", "finetune")  # whole numbers
DEFAULTS = {
    "top_k": 10,
    "top_n": 10,
    "finetune": 0,
    "out": f"{os.environ.get('FEWTUNE_LOG_DIR', 'outputs')}/search-words",
}


def main(argv: list[str]) -> None:
    from fewtune.config import use_config_dirs
    from fewtune.jobs.atomic import write_json_atomic
    from fewtune.run.results import METRICS_FILE
    from fewtune.words.searched import results_folder

    argv = use_config_dirs(argv)  # --config-dir <folder>: as for fewtune.train
    settings, overrides = dict(DEFAULTS), []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.startswith("search."):
            name = key.removeprefix("search.")
            if name not in DEFAULTS:
                raise SystemExit(
                    f"error: unknown setting {key}; the settings are {['search.' + k for k in DEFAULTS]}"
                )
            if name in SETTINGS:
                lowest = 0 if name == "finetune" else 1
                if not value.isdigit() or int(value) < lowest:
                    raise SystemExit(
                        f"error: {key}={value}: give a whole number of at least {lowest}"
                    )
                value = int(value)
            settings[name] = value
        else:
            overrides.append(arg)
    try:
        results = search(
            overrides, settings["top_k"], settings["top_n"], keep=max(1, settings["finetune"])
        )
        out = results_folder(settings["out"], results["task"], results["k"], results["data_seed"])
        if settings["finetune"]:
            from fewtune.words.finetune import finetune_assignments

            finetune_assignments(overrides, results, out)
    except FewtuneError as err:
        raise SystemExit(f"error: {err}") from None
    write_json_atomic(out / METRICS_FILE, results)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
