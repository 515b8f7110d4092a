"""K-shot splits by LM-BFF's procedure, for any K and seeds.

    python -m fewtune.sample sst2 sst5 trec --out outputs/data             # K=16, LM-BFF's 5 seeds
    python -m fewtune.sample sst2 --k 4 8 16 32 64 --out outputs/data      # a learning curve's splits
    python -m fewtune.sample sst2 --mode k-shot-10x --out outputs/data-10x  # dev = 10K per label
    python -m fewtune.sample cola --hub --out outputs/data                  # from the task's hub dataset

For each task, K and seed, as LM-BFF's tools/generate_k_shot_data.py does: seed NumPy's global
generator with the seed, shuffle the training pool with np.random.shuffle, group it by label in
order of first appearance, write the first K of each label as train and the next K (10K in
k-shot-10x mode) as dev, and the task's test set as test, to <out>/k-shot/<TASK>/<K>-<seed>/
(the layout that paths.data_dir reads; LM-BFF puts 10x splits in k-shot-10x/ instead). On
LM-BFF's original files this gives its released splits byte for byte. Where the data come from
is the task config's 'original' or 'hub' entry (fewtune/data/originals.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf

from fewtune.config import CONF_ROOT, compose_config, config_options
from fewtune.data.originals import Pool, load_pool
from fewtune.data.tasks import TaskSpec
from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_file_atomic

LMBFF_SEEDS = (13, 21, 42, 87, 100)
DEV_PER_K = {"k-shot": 1, "k-shot-10x": 10}


def default_source() -> Path:
    data_dir = os.environ.get("FEWTUNE_DATA_DIR") or CONF_ROOT.parent / "shared" / "data"
    return Path(data_dir) / "original"


def task_config(name: str, config_dirs: list[Path] = ()) -> dict:
    """The task's config as ``python -m fewtune.train task=<name>`` finds it: conf/task/ or a user's
    config folder (FEWTUNE_CONFIG_DIR, --config-dir)."""
    from hydra.errors import MissingConfigException

    known = config_options("task", config_dirs)
    if name not in known:
        raise FewtuneError(
            f"no task '{name}' in conf/task/ or the user config folders (FEWTUNE_CONFIG_DIR, --config-dir); "
            f"tasks: {', '.join(known)}"
        )
    try:
        cfg = compose_config([f"task={name}"], config_dirs)
    except MissingConfigException as err:  # the search path changed in between
        raise FewtuneError(str(err).splitlines()[0]) from None
    return OmegaConf.to_container(cfg.task, resolve=True)


def check_sizes(task: TaskSpec, pool: Pool, k: int, dev_per_k: int) -> list[str]:
    """K train + K dev per label must exist; more dev (10x mode) is taken where it exists, as LM-BFF does."""
    if k < 1:
        raise FewtuneError(f"K must be at least 1, not {k}")
    counts = Counter(pool.labels)
    labels = sorted(counts) if task.regression else task.labels  # a score is grouped by bins
    short = {label: counts[label] for label in labels if counts[label] < 2 * k}
    if short:
        largest = min(counts[label] for label in labels) // 2
        raise FewtuneError(
            f"task '{task.name}': K={k} needs {2 * k} examples per label (K train + K dev) but "
            f"{', '.join(f'label {label!r} has {n}' for label, n in short.items())} in {pool.source}; "
            f"the largest K this pool allows is {largest}"
        )
    wanted = (1 + dev_per_k) * k
    return [
        f"note: task '{task.name}' K={k}: label {label!r} has {counts[label]} examples, so its dev gets "
        f"{counts[label] - k} instead of {dev_per_k * k}"
        for label in labels
        if counts[label] < wanted
    ]


def draw(pool: Pool, k: int, seed: int, dev_per_k: int = 1) -> tuple[list, list]:
    """(train rows, dev rows): LM-BFF's shuffle, grouping by label and cut."""
    import numpy as np

    np.random.seed(seed)
    # Shuffling positions with the legacy generator gives the same permutation as shuffling the
    # rows themselves (both take np.random.shuffle's path for Python lists).
    order = list(range(len(pool.rows)))
    np.random.shuffle(order)
    groups: dict[str, list[int]] = {}
    for i in order:
        groups.setdefault(pool.labels[i], []).append(i)
    train = [pool.rows[i] for group in groups.values() for i in group[:k]]
    dev = [pool.rows[i] for group in groups.values() for i in group[k : k * (1 + dev_per_k)]]
    return train, dev


def write_split(
    task: TaskSpec, pool: Pool, out: Path, folder: Path, train: list, dev: list
) -> None:
    write_file_atomic(folder / task.splits["train"].path, pool.render(train))
    write_file_atomic(folder / task.splits["dev"].path, pool.render(dev))
    test = task.splits["test"]
    # A test file shared by every K and seed (a path under the data folder) goes there once.
    write_file_atomic((out if test.shared else folder) / test.path, pool.test)


def sample_task(
    cfg: dict,
    out: Path,
    ks: list[int],
    seeds: list[int],
    source: Path,
    mode: str = "k-shot",
    use_hub: bool = False,
) -> list[str]:
    """Write every (K, seed) split of one task (its config as a dict); returns report lines."""
    task = TaskSpec.from_config(cfg)
    pool = load_pool(task, cfg, source, use_hub)
    dev_per_k = DEV_PER_K[mode]
    notes = [
        line for k in ks for line in check_sizes(task, pool, k, dev_per_k)
    ]  # all K checked before writing
    lines = []
    for k in ks:
        for seed in seeds:
            train, dev = draw(pool, k, seed, dev_per_k)
            folder = out / "k-shot" / task.dir / f"{k}-{seed}"
            write_split(task, pool, out, folder, train, dev)
            lines.append(f"{task.dir} {k}-{seed}: train {len(train)}, dev {len(dev)} -> {folder}")
    return notes + lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fewtune.sample", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "tasks", nargs="+", help="task config names (conf/task/<name>.yaml), e.g. sst2 sst5 trec"
    )
    parser.add_argument(
        "--config-dir",
        type=Path,
        action="append",
        default=[],
        help="a folder of your own configs (task/<name>.yaml)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="writes <out>/k-shot/<TASK>/<K>-<seed>/"
    )
    parser.add_argument(
        "--k", type=int, nargs="+", default=[16], help="examples per label in train (and dev)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(LMBFF_SEEDS), help="LM-BFF's by default"
    )
    parser.add_argument(
        "--source", type=Path, default=None, help="original data folder (default: <data>/original)"
    )
    parser.add_argument(
        "--mode",
        choices=sorted(DEV_PER_K),
        default="k-shot",
        help="k-shot-10x: dev has 10K per label",
    )
    parser.add_argument(
        "--hub", action="store_true", help="use the task's Hugging Face dataset (config 'hub')"
    )
    args = parser.parse_args(argv)
    source = args.source or default_source()
    try:
        for name in args.tasks:
            cfg = task_config(name, args.config_dir)
            for line in sample_task(cfg, args.out, args.k, args.seeds, source, args.mode, args.hub):
                print(line)
    except FewtuneError as err:
        sys.exit(f"error: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
