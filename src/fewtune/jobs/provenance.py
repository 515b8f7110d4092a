"""Where a result came from, for metrics.json: package versions, the project's git commit and the
checksums of the data files the run read.

Every part degrades to ``null`` rather than failing a run: a missing package, a copy of the
project that is not a git checkout, no git program.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from fewtune.config import PROJECT_ROOT

PACKAGES = ("torch", "pytorch-lightning", "transformers", "peft", "hydra-core", "fewtune")
# "dirty" asks whether the code and configuration that ran differ from the commit: results,
# notes and notebooks written beside them (e.g. an archive into results/) do not count.
CODE_PATHS = ("src", "conf", "pyproject.toml")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):  # no git program, or it hangs
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None}; None unless ``root`` is itself a checkout
    (an installed copy inside some other repository must not report that repository's commit)."""
    if not (Path(root) / ".git").exists():
        return {"commit": None, "dirty": None}
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--", *CODE_PATHS) if commit else None
    return {
        "commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
    }


@functools.cache
def code_state() -> dict[str, Any]:
    """The project's ``git_state`` when this process first asks (its first job starts): the code
    a multirun runs is what its process imported then, whatever the checkout holds when a later
    job ends."""
    return git_state()


def md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files(cfg) -> dict[str, dict[str, str]]:
    """split -> {"file": path relative to the data folder, "md5": ...} of the files the run reads
    (train, dev and its test split; label_words: a searched-words file); raises the data's FewtuneError
    when one is missing."""
    from omegaconf import OmegaConf

    from fewtune.data.tasks import TaskSpec
    from fewtune.words.searched import searched_words_file

    task = TaskSpec.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    data_dir = Path(cfg.paths.data_dir)
    splits = {"train": "train", "dev": "dev", "test": cfg.get("test_split", "test")}
    folder = task.check_files(data_dir, cfg.k, cfg.data_seed, tuple(dict.fromkeys(splits.values())))
    files = {}
    for role, split in splits.items():
        path = task.split_path(split, folder, data_dir)
        try:
            name = str(path.relative_to(data_dir))
        except ValueError:
            name = str(path)
        files[role] = {"file": name, "md5": md5(path)}
    words = searched_words_file(
        cfg
    )  # method=prompt-autowords reads its label words from a file too
    if words is not None:
        files["label_words"] = {"file": str(words), "md5": md5(words)}
    return files


def collect(data: dict[str, dict[str, str]], code: dict[str, Any]) -> dict[str, Any]:
    return {"versions": versions(), "git": code, "data": data}
