"""Runs -> a paper-style table: mean (std) over seeds, in LM-BFF Table 3's layout.

    python -m fewtune.table <multirun dir> [more dirs] [--out DIR]

Every folder with a ``.hydra/config.yaml`` below the given folders is a run. A run with
``metrics.json`` is complete; with ``failed.json`` it failed; with neither it was killed or
is still running. Jobs that a multirun's sweep asked for but that have no folder at all are
missing. All of these are listed under the table instead of being silently averaged over.

Where several runs share a seed (a hyperparameter grid), the one with the best dev metric
is kept, as LM-BFF selects. Numbers are percentages; std is the population standard
deviation over seeds (numpy's default, as LM-BFF reports).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from fewtune.errors import FewtuneError
from fewtune.results import FAILED_FILE, METRICS_FILE

TASK_ORDER = ["sst2", "sst5", "mr", "cr", "mpqa", "subj", "trec", "cola"]
METHOD_ORDER = ["zeroshot", "finetune", "prompt"]


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
    status: str  # completed | failed | incomplete
    test: float | None = None
    dev: float | None = None
    error: str = ""


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / len(self.values))

    def text(self, expected: int) -> str:
        s = f"{100 * self.mean:.1f} ({100 * self.std:.1f})" if len(self.values) > 1 else f"{100 * self.mean:.1f}"
        return s if len(self.values) >= expected else f"{s} [{len(self.values)}/{expected} seeds]"


def _read_run(folder: Path) -> Run:
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = tuple(OmegaConf.load(overrides_file)) if overrides_file.is_file() else ()
    run = Run(
        path=folder,
        task=cfg.task.name,
        task_title=cfg.task.get("title") or cfg.task.name,
        method=cfg.method.name,
        method_title=cfg.method.get("title") or cfg.method.name,
        model=cfg.model.name,
        k=int(cfg.k),
        seed=int(cfg.seed),
        metric=cfg.task.metric,
        overrides=overrides,
        status="incomplete",
    )
    if (folder / METRICS_FILE).is_file():
        metrics = json.loads((folder / METRICS_FILE).read_text())
        run.status, run.test, run.dev = "completed", metrics["test"][run.metric], metrics.get("best_dev")
    elif (folder / FAILED_FILE).is_file():
        run.status, run.error = "failed", json.loads((folder / FAILED_FILE).read_text()).get("error", "")
    return run


def collect_runs(roots: list[Path]) -> list[Run]:
    runs = []
    for root in roots:
        if not root.is_dir():
            raise FewtuneError(f"{root} is not a folder; give a multirun folder (outputs/multiruns/<date>)")
        for config in sorted(root.rglob(".hydra/config.yaml")):
            runs.append(_read_run(config.parent.parent))
    return runs


def missing_jobs(root: Path, runs: list[Run]) -> list[str]:
    """Jobs the sweep in ``root/multirun.yaml`` asked for that have no run folder."""
    sweep_file = root / "multirun.yaml"
    if not sweep_file.is_file():
        return []
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    arguments = list(OmegaConf.load(sweep_file).hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    expected = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    present = {frozenset(r.overrides) for r in runs if r.path.is_relative_to(root)}
    return [" ".join(job) for job in expected if frozenset(job) not in present]


def best_per_seed(runs: list[Run]) -> dict[tuple, Cell]:
    """(method, model, k, task) -> test metric of the best-on-dev run of each seed."""
    chosen: dict[tuple, Run] = {}
    for run in runs:
        if run.status != "completed":
            continue
        key = (run.method, run.model, run.k, run.task, run.seed)
        best = chosen.get(key)
        if best is None or (run.dev or -math.inf) > (best.dev or -math.inf):
            chosen[key] = run
    cells: dict[tuple, Cell] = defaultdict(Cell)
    for (method, model, k, task, _seed), run in sorted(chosen.items(), key=lambda kv: kv[0][-1]):
        cells[(method, model, k, task)].values.append(run.test)
    return cells


def _order(name: str, order: list[str]) -> tuple:
    return (order.index(name), name) if name in order else (len(order), name)


def build_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per method (and backbone, K), one column per task."""
    cells = best_per_seed(runs)
    titles = {r.task: r.task_title for r in runs}
    metrics = {r.task: r.metric for r in runs}
    method_titles = {r.method: r.method_title for r in runs}
    # A cell over fewer seeds than its task was run with says so.
    task_seeds = defaultdict(set)
    for r in runs:
        task_seeds[r.task].add(r.seed)
    tasks = sorted(titles, key=lambda t: _order(t, TASK_ORDER))
    row_keys = sorted({(r.method, r.model, r.k) for r in runs}, key=lambda key: (_order(key[0], METHOD_ORDER), key[1:]))
    header = ["Method", "Model", "K"] + [
        titles[t] + ("" if metrics[t] == "acc" else f" ({metrics[t].upper()})") for t in tasks
    ]
    rows = []
    for method, model, k in row_keys:
        row = [method_titles[method], model, str(k)]
        for task in tasks:
            key = (method, model, k, task)
            row.append(cells[key].text(len(task_seeds[task])) if key in cells else "-")
        rows.append(row)
    return header, rows


def to_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_latex(header: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("_", r"\_").replace("%", r"\%")

    lines = [r"\begin{tabular}{lll" + "c" * (len(header) - 3) + "}", r"\toprule"]
    lines.append(" & ".join(esc(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(esc(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue()


def problems(roots: list[Path], runs: list[Run]) -> list[str]:
    lines = [f"failed: {r.path} ({r.error})" for r in runs if r.status == "failed"]
    lines += [f"incomplete (killed or still running): {r.path}" for r in runs if r.status == "incomplete"]
    for root in roots:
        lines += [f"missing: {root} job '{job}'" for job in missing_jobs(root, runs)]
    return lines


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def make_table(roots: list[Path], out: Path | None = None) -> str:
    runs = collect_runs(roots)
    if not runs:
        raise FewtuneError(f"no runs (folders with .hydra/config.yaml) under {', '.join(map(str, roots))}")
    header, rows = build_table(runs)
    out = out or roots[0]
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(header, rows)
    write_atomic(out / "table.md", markdown)
    write_atomic(out / "table.tex", to_latex(header, rows))
    write_atomic(out / "table.csv", to_csv(header, rows))
    report = problems(roots, runs)
    complete = sum(r.status == "completed" for r in runs)
    summary = f"{complete} of {len(runs)} runs complete; table.md, table.tex, table.csv in {out}"
    return "\n".join([markdown, summary, *report]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewtune.table", description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun (or run) folders")
    parser.add_argument("--out", type=Path, default=None, help="where to write table.{md,tex,csv}")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(make_table(args.dirs, args.out))
    except FewtuneError as err:
        sys.exit(f"error: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
