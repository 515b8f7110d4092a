"""Ensembles of finished runs from their stored predictions, without running any model: the mean
of the members' label probabilities (the score, for regression), as LM-BFF ensembles its
templates (and PET its patterns). Each ensemble is written as a run folder of its own
(.hydra/config.yaml, metrics.json, predictions/{dev,test}.parquet), so ``python -m fewtune.table``
shows it as a row, with significance marks like any other.

``by="seed"`` makes one ensemble per seed from the members of that seed (LM-BFF's template
ensemble: the table then gives its mean (std) over seeds); ``by="none"`` one ensemble of all
members (e.g. of the seeds of one method), shown as a single number.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_file_atomic, write_json_atomic
from fewtune.predictions.rescore import rescore
from fewtune.predictions.store import (
    SPLITS,
    Predictions,
    has_predictions,
    path_of,
    read_run,
)
from fewtune.run.results import METRICS_FILE

CONFIG = Path(".hydra") / "config.yaml"
BY = ("seed", "none")


@dataclass
class Member:
    path: Path
    cfg: DictConfig
    metrics: dict


def find_members(paths: list[Path]) -> list[Member]:
    """The finished runs with stored test predictions at or below ``paths``."""
    found = []
    for path in paths:
        if not Path(path).is_dir():
            raise FewtuneError(f"{path} is not a folder; give run folders or multirun folders")
        folders = sorted({p.parent.parent for p in Path(path).rglob(str(CONFIG))})
        runs = [f for f in folders if (f / METRICS_FILE).is_file() and has_predictions(f)]
        if not runs:
            raise FewtuneError(f"no finished run with predictions/test.parquet at or below {path}")
        found += [
            Member(f, OmegaConf.load(f / CONFIG), json.loads((f / METRICS_FILE).read_text()))
            for f in runs
        ]
    return found


def average(members: list[Predictions]) -> Predictions:
    """The members' mean probabilities (or scores), scored as one batch in index order."""
    first = members[0]
    for other in members[1:]:
        same = (
            other.meta["task"] == first.meta["task"] and other.labels == first.labels
            and np.array_equal(other.frame["index"].to_numpy(), first.frame["index"].to_numpy())
            and np.array_equal(other.frame["gold"].to_numpy(), first.frame["gold"].to_numpy())
        )  # fmt: skip
        if not same:
            raise FewtuneError(
                f"cannot average {first.meta['task']} {first.meta['split']} predictions with {other.meta['task']} "
                f"ones over other examples ({other.meta['split_file']} vs {first.meta['split_file']}); "
                "ensemble runs of one task and split"
            )
    mean = np.mean([m.outputs() for m in members], axis=0, dtype=np.float64).astype(np.float32)
    frame = first.frame
    meta = {**first.meta, "split_file": first.meta["split_file"]}
    if first.regression:
        return Predictions.build(meta, frame["index"], frame["gold"], score=mean[:, 0])
    return Predictions.build(meta, frame["index"], frame["gold"], probs=mean)


def ensemble(
    paths: list[Path], out: Path, name: str = "ensemble", title: str | None = None, by: str = "seed"
) -> list[Path]:
    """Write one ensemble run folder per group under ``out``; returns them."""
    if by not in BY:
        raise FewtuneError(f"--by {by} is unknown; use one of {list(BY)}")
    members = find_members(paths)
    groups: dict[object, list[Member]] = defaultdict(list)
    for member in members:
        groups[int(member.cfg.seed) if by == "seed" else None].append(member)
    small = [seed for seed, group in groups.items() if len(group) < 2]
    if small:
        where = f"seed {small[0]} has" if by == "seed" else "there is"
        raise FewtuneError(
            f"an ensemble needs at least 2 runs, and {where} {len(groups[small[0]])}; give more runs"
        )
    written = []
    for seed, group in sorted(groups.items(), key=lambda kv: kv[0] or 0):
        folder = out / (f"{name}-seed{seed}" if by == "seed" else name)
        written.append(_write(folder, group, name, title or f"Ensemble of {len(group)} runs", by))
    return written


def split_identity(member: Member, split: str) -> str:
    """What the member scored on ``split``: its file's md5 (metrics.json's provenance; LM-BFF's
    test.tsv is the same file in every seed's folder), else the file's name."""
    source = member.metrics.get("test_split", "test") if split == "test" else split
    data = (member.metrics.get("provenance") or {}).get("data") or {}
    if (data.get(source) or {}).get("md5"):
        return data[source]["md5"]
    return read_run(member.path, split).meta.get("split_file", "")


def _write(folder: Path, group: list[Member], name: str, title: str, by: str) -> Path:
    predictions = {}
    for split in SPLITS:
        if not all(has_predictions(m.path, split) for m in group):
            continue
        if split == "dev" and len({split_identity(m, split) for m in group}) > 1:
            continue  # each seed's K-shot dev set is its own (--by none over seeds): no dev ensemble
        if len({split_identity(m, split) for m in group}) > 1:
            files = sorted({read_run(m.path, split).meta.get("split_file", "") for m in group})
            raise FewtuneError(
                f"cannot average {split} predictions made on different files ({', '.join(files)}); "
                "ensemble runs of one task and split"
            )
        predictions[split] = average([read_run(m.path, split) for m in group])
    test = rescore(predictions["test"])
    metric = predictions["test"].metric
    cfg = _config(group, name, title, by)
    results = {
        **_identity(cfg, group, metric),
        "test": test,
        "test_split": group[0].metrics.get("test_split", "test"),
        "best_dev": rescore(predictions["dev"])[metric] if "dev" in predictions else None,
        "ensemble": {"members": [str(m.path) for m in group], "average": "probs", "by": by},
        "trainable_params": sum(m.metrics.get("trainable_params") or 0 for m in group),
        "total_params": sum(m.metrics.get("total_params") or 0 for m in group),
        "task_storage_bytes": sum(m.metrics.get("task_storage_bytes") or 0 for m in group),
    }
    for split, preds in predictions.items():
        preds.write(path_of(folder, split))
    write_file_atomic(folder / CONFIG, OmegaConf.to_yaml(cfg))
    write_json_atomic(folder / METRICS_FILE, results)  # last: the folder is complete
    return folder


def _config(group: list[Member], name: str, title: str, by: str) -> DictConfig:
    """The first member's config, renamed: the table groups rows by method, model, K and peft."""
    cfg = OmegaConf.create(OmegaConf.to_container(group[0].cfg, resolve=False))
    models = sorted({str(m.cfg.model.name) for m in group})
    pefts = {str((m.cfg.get("peft") or {}).get("name", "none")) for m in group}
    with open_dict(cfg):
        cfg.method = {"name": name, "title": title, "head": cfg.method.get("head", "lm"), "train": True,
                      "seed_free": by == "none"}  # fmt: skip
        cfg.model.name = "+".join(models)
        if len(pefts) > 1:
            cfg.peft = {"name": "none"}
        cfg.ensemble = {"members": [str(m.path) for m in group], "by": by}
    return cfg


def _identity(cfg: DictConfig, group: list[Member], metric: str) -> dict:
    first = group[0].metrics
    keys = ("task", "k", "seed", "data_seed")
    return {**{key: first.get(key) for key in keys}, "model": cfg.model.name, "method": cfg.method.name,
            "peft": cfg.peft.get("name", "none"), "metric": metric}  # fmt: skip
