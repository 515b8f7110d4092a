"""Runs -> a paper-style table: mean (std) over seeds, in LM-BFF Table 3's layout.

    python -m fewtune.table <multirun dir> [more dirs] [--out DIR] [--paper] [--wandb]

Every folder with a ``.hydra/config.yaml`` below the given folders is a run. A run with
``metrics.json`` is complete; with ``failed.json`` it failed; with neither it was killed or
is still running. Jobs that a multirun's sweep asked for but that have no folder at all are
missing. All of these are listed under the table instead of being silently averaged over.

Where several runs share a seed (a hyperparameter grid), the one with the best dev metric
is kept, as LM-BFF selects. Numbers are percentages; std is the population standard
deviation over seeds (numpy's default, as LM-BFF reports).

Written to --out (default: the first folder): table.md, table.tex, table.csv, runs.csv (every
run, whether its number is in the table, its config hash and git commit), a bar chart of
mean and std per task with every seed as a dot (bar_chart.png), where the runs have several
K a learning curve (learning_curve.png), and where there are peft runs trainable parameters
against the metric (params_accuracy.png). Where runs stored per-example predictions
(predictions/test.parquet), each pair of rows in a column gets a paired significance test, marked
in table.md and table.tex and given in full in significance.csv, and each task and row a
confusion matrix (confusion/*.png; fewtune/predictions/tables.py). --paper adds LM-BFF's Table 3 rows (fewtune/paper.py) with the citation;
--wandb logs the table, a per-cell numeric table and the plots to a W&B run (offline unless
WANDB_MODE=online).
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

from fewtune import config as _resolvers  # noqa: F401  (saved configs use its resolvers, e.g. ${basename:})
from fewtune import paper as lmbff
from fewtune.errors import FewtuneError
from fewtune.pet.table_rows import pet_rows
from fewtune.progress import track
from fewtune.results import FAILED_FILE, METRICS_FILE, write_file_atomic

# LM-BFF Table 3's columns: single-sentence tasks, then sentence pairs.
TASK_ORDER = ["sst2", "sst5", "mr", "cr", "mpqa", "subj", "trec", "cola",
              "mnli", "mnli-mm", "snli", "qnli", "rte", "mrpc", "qqp", "stsb"]
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
    trainable_params: int | None = None  # from metrics.json: the params-vs-accuracy plot
    metrics: dict = field(default_factory=dict)  # the whole metrics.json: costs.md reads it
    resumable: bool = False  # checkpoints/last.ckpt and no metrics.json: a rerun continues it
    seed_free: bool = False  # trains nothing and samples nothing: every seed gives the same test result
    trains: bool = True  # False for zeroshot and icl (calibrated or not): no trained parameters to plot
    peft: str = "none"  # the peft group's name: the params-vs-accuracy plot is drawn for peft runs
    predictions_prefix: str = ""  # which predictions/<prefix>test.parquet the row scores (PET's ensemble row)


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)
    seed_free: bool = False  # all its runs are seed-free: one seed stands for all

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float:
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / len(self.values))

    def text(self, expected: int) -> str:
        s = f"{100 * self.mean:.1f} ({100 * self.std:.1f})" if len(self.values) > 1 else f"{100 * self.mean:.1f}"
        complete = len(self.values) >= expected or self.seed_free
        return s if complete else f"{s} [{len(self.values)}/{expected} seeds]"


@dataclass
class PaperCell:
    """A published number: mean and std (None where the paper gives none), as fractions."""

    mean: float
    std: float | None = None

    def text(self, expected: int = 0) -> str:
        return f"{100 * self.mean:.1f}" + ("" if self.std is None else f" ({100 * self.std:.1f})")


@dataclass
class TableRow:
    method: str
    title: str  # the Method column
    model: str
    k: str
    cells: dict[str, Cell | PaperCell]
    paper: bool = False


@dataclass
class Table:
    """One row per method (and backbone, K), one column per task: what every output shows."""

    tasks: list[str]
    titles: dict[str, str]
    metrics: dict[str, str]
    seeds: dict[str, int]  # seeds each task was run with: a cell over fewer says so
    rows: list[TableRow]

    def header(self) -> list[str]:
        return ["Method", "Model", "K"] + [self.column(t) for t in self.tasks]

    def column(self, task: str) -> str:
        metric = self.metrics[task]
        return self.titles[task] + ("" if metric == "acc" else f" ({metric.upper()})")

    def text_rows(self) -> list[list[str]]:
        return [
            [row.title, row.model, row.k]
            + [row.cells[t].text(self.seeds[t]) if t in row.cells else "-" for t in self.tasks]
            for row in self.rows
        ]

    @property
    def has_paper(self) -> bool:
        return any(row.paper for row in self.rows)

    def long_frame(self):
        """One line per (row, task) with numbers in percent: for W&B and for plots."""
        import pandas as pd

        records = [
            {
                "source": "LM-BFF paper" if row.paper else "ours",
                "method": row.title,
                "model": row.model,
                "k": row.k,
                "task": self.titles[task],
                "metric": self.metrics[task],
                "mean": 100 * cell.mean,
                "std": None if cell.std is None else 100 * cell.std,
                "seeds": len(cell.values) if isinstance(cell, Cell) else None,
            }
            for row in self.rows
            for task in self.tasks
            if (cell := row.cells.get(task)) is not None
        ]
        return pd.DataFrame.from_records(
            records, columns=["source", "method", "model", "k", "task", "metric", "mean", "std", "seeds"]
        )


def _read_run(folder: Path) -> Run:
    cfg = OmegaConf.load(folder / ".hydra" / "config.yaml")
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = tuple(OmegaConf.load(overrides_file)) if overrides_file.is_file() else ()
    method, method_title = cfg.method.name, cfg.method.get("title") or cfg.method.name
    peft = cfg.get("peft")
    peft_name = peft.name if peft is not None else "none"
    trains = cfg.method.get("train", True) is not False
    if cfg.method.get("calibrate"):  # contextual calibration: beside the uncalibrated row, never in it
        method, method_title = f"{method}+calibrated", f"{method_title} (calibrated)"
    if peft_name != "none":  # a peft method is a row of its own
        method, method_title = f"{method}+{peft_name}", f"{method_title} + {peft.get('title') or peft_name}"
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
        seed_free=(not trains and cfg.method.get("demonstrations") is None) or bool(cfg.method.get("seed_free")),
        trains=trains,
        peft=peft_name,
    )
    if (folder / METRICS_FILE).is_file():
        metrics = json.loads((folder / METRICS_FILE).read_text())
        run.metrics = metrics
        run.status, run.test, run.dev = "completed", metrics["test"][run.metric], metrics.get("best_dev")
        run.trainable_params = metrics.get("trainable_params")
    elif (folder / FAILED_FILE).is_file():
        run.status, run.error = "failed", json.loads((folder / FAILED_FILE).read_text()).get("error", "")
    if run.status != "completed" and (folder / "checkpoints" / "last.ckpt").is_file():
        run.status, run.resumable = "incomplete", True  # killed mid-training, even with failed.json
    return run


def collect_runs(roots: list[Path]) -> list[Run]:
    runs = []
    for root in roots:
        if not root.is_dir():
            raise FewtuneError(f"{root} is not a folder; give a multirun folder (outputs/multiruns/<date>)")
        for config in track(sorted(root.rglob(".hydra/config.yaml")), f"reading runs in {root}"):
            runs += pet_rows(_read_run(config.parent.parent))  # a PET run: its ensemble and distilled rows
    return runs


def missing_jobs(root: Path, runs: list[Run]) -> list[str]:
    """Jobs the sweep in ``root/multirun.yaml`` asked for that have no run folder."""
    sweep_file = root / "multirun.yaml"
    if not sweep_file.is_file():
        return []
    from fewtune.sweep_jobs import expected_jobs

    expected = expected_jobs(OmegaConf.load(sweep_file).hydra)
    present = {frozenset(r.overrides) for r in runs if r.path.is_relative_to(root)}
    return [" ".join(job) for job in expected if frozenset(job) not in present]


def best_runs(runs: list[Run]) -> dict[tuple, Run]:
    """(method, model, k, task, seed) -> the completed run with the best dev metric."""
    chosen: dict[tuple, Run] = {}
    for run in runs:
        if run.status != "completed":
            continue
        key = (run.method, run.model, run.k, run.task, run.seed)
        best = chosen.get(key)
        if best is None or (run.dev or -math.inf) > (best.dev or -math.inf):
            chosen[key] = run
    return chosen


def best_per_seed(runs: list[Run]) -> dict[tuple, Cell]:
    """(method, model, k, task) -> test metric of the best-on-dev run of each seed."""
    chosen = defaultdict(list)
    for (method, model, k, task, _seed), run in sorted(best_runs(runs).items(), key=lambda kv: kv[0][-1]):
        chosen[(method, model, k, task)].append(run)
    return {
        key: Cell([run.test for run in group], seed_free=all(run.seed_free for run in group))
        for key, group in chosen.items()
    }


def _order(name: str, order: list[str]) -> tuple:
    base = name.split("+")[0]  # "prompt+lora" sorts with "prompt", after it
    if base != name:
        return (*_order(base, order), name)
    return (order.index(name), name) if name in order else (len(order), name)


def summarize(runs: list[Run], paper: bool = False) -> Table:
    """Best-on-dev per seed, mean (std) per cell; with ``paper``, LM-BFF's rows beside ours."""
    cells = best_per_seed(runs)
    titles = {r.task: r.task_title for r in runs}
    metrics = {r.task: r.metric for r in runs}
    method_titles = {r.method: r.method_title for r in runs}
    task_seeds = defaultdict(set)
    for r in runs:
        task_seeds[r.task].add(r.seed)
    tasks = sorted(titles, key=lambda t: _order(t, TASK_ORDER))
    row_keys = sorted({(r.method, r.model, r.k) for r in runs}, key=lambda key: (_order(key[0], METHOD_ORDER), key[1:]))
    rows = []
    for i, (method, model, k) in enumerate(row_keys):
        row_cells = {t: cells[(method, model, k, t)] for t in tasks if (method, model, k, t) in cells}
        rows.append(TableRow(method, method_titles[method], model, str(k), row_cells))
        last_of_method = i + 1 == len(row_keys) or row_keys[i + 1][0] != method
        if paper and last_of_method:
            rows += _paper_rows([method], method_titles, tasks, metrics)
    if paper:
        rows += _paper_rows([lmbff.FULL_DATA], lmbff.TITLES, tasks, metrics)
    return Table(tasks, titles, metrics, {t: len(s) for t, s in task_seeds.items()}, rows)


def _paper_rows(methods: list[str], titles: dict[str, str], tasks: list[str], metrics: dict[str, str]) -> list[TableRow]:
    rows = []
    for method in methods:
        cells = {}
        for task in tasks:
            number = lmbff.paper_number(method, task, metrics[task])
            if number is not None:
                mean, std = number
                cells[task] = PaperCell(mean / 100, None if std is None else std / 100)
        if cells:
            k = "all" if method == lmbff.FULL_DATA else "16"
            rows.append(TableRow(method, f"{titles.get(method, method)} (LM-BFF paper)", lmbff.MODEL, k, cells, True))
    return rows


def build_table(runs: list[Run], paper: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per method (and backbone, K), one column per task."""
    table = summarize(runs, paper)
    return table.header(), table.text_rows()


def to_markdown(header: list[str], rows: list[list[str]], note: str = "") -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def to_latex(header: list[str], rows: list[list[str]], note: str = "") -> str:
    def esc(s: str) -> str:
        return s.replace("_", r"\_").replace("%", r"\%")

    lines = [r"\begin{tabular}{lll" + "c" * (len(header) - 3) + "}", r"\toprule"]
    lines.append(" & ".join(esc(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(esc(c) for c in row) + r" \\" for row in rows]
    lines.append(r"\bottomrule")
    if note:
        lines.append(rf"\multicolumn{{{len(header)}}}{{l}}{{\footnotesize {esc(note)}}} \\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue()


def problems(roots: list[Path], runs: list[Run]) -> list[str]:
    lines = [f"failed: {r.path} ({r.error})" for r in runs if r.status == "failed"]
    lines += [f"incomplete ({_why_incomplete(r)}): {r.path}" for r in runs if r.status == "incomplete"]
    for root in roots:
        lines += [f"missing: {root} job '{job}'" for job in missing_jobs(root, runs)]
    return lines


def _why_incomplete(run: Run) -> str:
    if not run.resumable:
        return "killed or still running"
    return "resumable from checkpoints/last.ckpt" + (f"; last error: {run.error}" if run.error else "")


def paper_note() -> str:
    return f"Rows marked (LM-BFF paper): {lmbff.CITATION}; - where the paper has no number."


def make_table(
    roots: list[Path],
    out: Path | None = None,
    paper: bool = False,
    wandb: bool = False,
    project: str = "fewtune",
    costs: bool = False,
    resamples: int = 10_000,
) -> str:
    runs = collect_runs(roots)
    if not runs:
        raise FewtuneError(f"no runs (folders with .hydra/config.yaml) under {', '.join(map(str, roots))}")
    table = summarize(runs, paper)
    header, rows = table.header(), table.text_rows()
    note = paper_note() if table.has_paper else ""
    out = out or roots[0]
    out.mkdir(parents=True, exist_ok=True)
    from fewtune.predictions.tables import significance_and_confusion

    # runs with stored predictions: significance marks (and significance.csv), confusion matrices
    extra = significance_and_confusion(table, best_runs(runs), out, resamples)
    markdown = to_markdown(header, extra.rows(rows, table, "markdown"), extra.note(note, "markdown"))
    write_file_atomic(out / "table.md", markdown)
    write_file_atomic(out / "table.tex", to_latex(header, extra.rows(rows, table, "latex"), extra.note(note, "latex")))
    write_file_atomic(out / "table.csv", to_csv(header, rows))
    from fewtune.table_plots import write_plots
    from fewtune.table_runs import runs_csv

    write_file_atomic(out / "runs.csv", runs_csv(runs, best_runs(runs)))  # which runs each cell came from
    written = ["table.md", "table.tex", "table.csv", "runs.csv"] + [p.name for p in write_plots(table, out, runs)]
    written += extra.written
    if costs:
        from fewtune.table_costs import write_costs

        costs_markdown, costs_files = write_costs(runs, out, TASK_ORDER, METHOD_ORDER)
        markdown += "\n" + costs_markdown
        written += costs_files
    report = problems(roots, runs)
    complete = len({r.path for r in runs if r.status == "completed"})  # a PET run has two rows, one folder
    summary = [f"{complete} of {len({r.path for r in runs})} runs complete; {', '.join(written)} in {out}"]
    if wandb:
        from fewtune.table_wandb import log_table

        summary.append(log_table(table, out, [out / name for name in written if name.endswith(".png")], project))
    return "\n".join([markdown, *summary, *report]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fewtune.table", description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun (or run) folders")
    parser.add_argument("--out", type=Path, default=None, help="where to write the table and plots")
    parser.add_argument("--paper", action="store_true", help="add LM-BFF's Table 3 numbers (Gao et al., 2021)")
    parser.add_argument("--wandb", action="store_true", help="log the table and plots to W&B (offline by default)")
    parser.add_argument("--wandb-project", default="fewtune", help="the W&B project (default: fewtune)")
    parser.add_argument(
        "--costs", action="store_true", help="also costs.md/.csv: trainable params, storage, step time per method"
    )
    parser.add_argument(
        "--resamples", type=int, default=10_000,
        help="bootstrap resamples of the significance test between rows with stored predictions (0: no test)",
    )
    args = parser.parse_args(argv)
    try:
        tables = make_table(args.dirs, args.out, args.paper, args.wandb, args.wandb_project, args.costs, args.resamples)
        sys.stdout.write(tables)
    except FewtuneError as err:
        sys.exit(f"error: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
