"""The runs below a folder, as the table reads them: each run's config and results, and what is
missing (failed, killed or never started jobs).

Every folder with a ``.hydra/config.yaml`` is a run. A run with ``metrics.json`` is complete;
with ``failed.json`` it failed; with neither it was killed or is still running. Jobs that a
multirun's sweep asked for but that have no folder at all are missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

import fewtune.config  # noqa: F401  (saved configs use its resolvers, e.g. ${basename:})
from fewtune.errors import FewtuneError
from fewtune.run import methods
from fewtune.run.progress import track
from fewtune.run.results import FAILED_FILE, METRICS_FILE, read_json_object


@dataclass
class Run:
    path: Path
    task: str
    task_title: str
    method: str
    method_title: str
    model: str
    k: int
    seed: int
    metric: str
    overrides: tuple[str, ...]
    status: str  # completed | failed | incomplete | smoke (part of the test set scored)
    test: float | None = None
    dev: float | None = None
    error: str = ""
    trainable_params: int | None = None  # from metrics.json: the params-vs-accuracy plot
    metrics: dict = field(default_factory=dict)  # the whole metrics.json: costs.md reads it
    resumable: bool = False  # checkpoints/last.ckpt and no metrics.json: a rerun continues it
    seed_free: bool = (
        False  # trains nothing and samples nothing: every seed gives the same test result
    )
    trains: bool = (
        True  # False for zeroshot and icl (calibrated or not): no trained parameters to plot
    )
    peft: str = "none"  # the peft group's name: the params-vs-accuracy plot is drawn for peft runs
    predictions_prefix: str = (
        ""  # which predictions/<prefix>test.parquet the row scores (PET's ensemble row)
    )


def read_run(folder: Path) -> Run:
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = tuple(OmegaConf.load(overrides_file)) if overrides_file.is_file() else ()
    method, method_title = cfg.method.name, cfg.method.get("title") or cfg.method.name
    peft = cfg.get("peft")
    peft_name = peft.name if peft is not None else "none"
    trains = cfg.method.get("train", True) is not False
    if cfg.method.get(
        "calibrate"
    ):  # contextual calibration: beside the uncalibrated row, never in it
        method, method_title = f"{method}+calibrated", f"{method_title} (calibrated)"
    if peft_name != "none":  # a peft method is a row of its own
        method, method_title = (
            f"{method}+{peft_name}",
            f"{method_title} + {peft.get('title') or peft_name}",
        )
    run = Run(
        path=folder,
        task=cfg.task.name,
        task_title=cfg.task.get("title") or cfg.task.name,
        method=method,
        method_title=method_title,
        model=cfg.model.name,
        k=int(cfg.k),
        seed=int(cfg.seed),
        metric=cfg.task.metric,
        overrides=overrides,
        status="incomplete",
        # an ensemble of several seeds (fewtune.ensemble --by none) is one number too
        seed_free=(not trains and cfg.method.get("demonstrations") is None)
        or bool(cfg.method.get("seed_free")),
        trains=trains,
        peft=peft_name,
    )
    if (folder / METRICS_FILE).is_file():
        fix = f"rerun that job (its command with hydra.run.dir={folder}) or delete {folder}"
        metrics = read_json_object(folder / METRICS_FILE, fix)
        if not isinstance(metrics.get("test"), dict) or run.metric not in metrics["test"]:
            raise FewtuneError(
                f"{folder / METRICS_FILE} has no test {run.metric}: it is no result: {fix}"
            )
        run.metrics = metrics
        run.status, run.test, run.dev = (
            "completed",
            metrics["test"][run.metric],
            metrics.get("best_dev"),
        )
        run.trainable_params = metrics.get("trainable_params")
        if not scored_whole_test(metrics, cfg):  # debug=fast, limit_test_batches: never a result
            run.status, run.error = "smoke", scored_text(metrics)
    elif (folder / FAILED_FILE).is_file():
        try:
            error = read_json_object(folder / FAILED_FILE, "rerun that job").get("error", "")
        except FewtuneError as err:  # a failed run all the same
            error = str(err)
        run.status, run.error = "failed", error
    if run.status != "completed" and (folder / "checkpoints" / "last.ckpt").is_file():
        run.status, run.resumable = "incomplete", True  # killed mid-training, even with failed.json
    return run


def scored_whole_test(metrics: dict, cfg) -> bool:
    # Runs written before metrics.json recorded test_complete: their config says whether it was cut.
    limit = (cfg.get("trainer") or {}).get("limit_test_batches")
    return bool(metrics.get("test_complete", limit is None or limit == 1.0))


def scored_text(metrics: dict) -> str:
    scored = metrics.get("scored")
    return (
        f"{scored['test']} of {scored['test_size']} test examples"
        if scored
        else "limit_test_batches set"
    )


def collect_runs(roots: list[Path]) -> list[Run]:
    runs = []
    for root in roots:
        if not root.is_dir():
            raise FewtuneError(
                f"{root} is not a folder; give a multirun folder (outputs/multiruns/<date>)"
            )
        for config in track(sorted(root.rglob(".hydra/config.yaml")), f"reading runs in {root}"):
            runs += method_rows(read_run(config.parent.parent))
    return runs


def missing_jobs(root: Path, runs: list[Run]) -> list[str]:
    """Jobs the sweep in ``root/multirun.yaml`` asked for that have no run folder."""
    sweep_file = root / "multirun.yaml"
    if not sweep_file.is_file():
        return []
    from fewtune.jobs.sweep import expected_jobs

    expected = expected_jobs(OmegaConf.load(sweep_file).hydra)
    present = {frozenset(r.overrides) for r in runs if r.path.is_relative_to(root)}
    return [" ".join(job) for job in expected if frozenset(job) not in present]


def method_rows(run: Run) -> list[Run]:
    """The table's rows for one run: itself, or what its method's ``table_rows`` hook makes of it
    (a PET run: its ensemble's and its distilled model's rows; run/methods.py)."""
    rows = methods.hook(OmegaConf.load(run.path / ".hydra" / "config.yaml").method, "table_rows")
    return rows(run) if rows is not None else [run]


def problems(roots: list[Path], runs: list[Run]) -> list[str]:
    lines = [f"failed: {r.path} ({r.error})" for r in runs if r.status == "failed"]
    lines += [
        f"incomplete ({_why_incomplete(r)}): {r.path}" for r in runs if r.status == "incomplete"
    ]
    lines += [
        f"smoke run, not in the table ({r.error} scored): {r.path}"
        for r in runs
        if r.status == "smoke"
    ]
    for root in roots:
        lines += [f"missing: {root} job '{job}'" for job in missing_jobs(root, runs)]
    return lines


def _why_incomplete(run: Run) -> str:
    if not run.resumable:
        return "killed or still running"
    return "resumable from checkpoints/last.ckpt" + (
        f"; last error: {run.error}" if run.error else ""
    )
