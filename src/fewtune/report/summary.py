"""Runs -> the table's cells: where several runs share a seed (a hyperparameter grid), the one
with the best dev metric is kept, as LM-BFF selects; a cell is the mean (std) of its seeds'
test metrics in LM-BFF Table 3's layout. Numbers are percentages; std is the population
standard deviation over seeds (numpy's default, as LM-BFF reports).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from fewtune.report import paper as lmbff
from fewtune.report.runs import Run

# LM-BFF Table 3's columns: single-sentence tasks, then sentence pairs.
TASK_ORDER = [
    "sst2",
    "sst5",
    "mr",
    "cr",
    "mpqa",
    "subj",
    "trec",
    "cola",
    "mnli",
    "mnli-mm",
    "snli",
    "qnli",
    "rte",
    "mrpc",
    "qqp",
    "stsb",
]
METHOD_ORDER = [
    "zeroshot",
    "finetune",
    "finetune-tuned",
    "setfit-logistic",
    "setfit-differentiable",
    "prompt",
]


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
        s = (
            f"{100 * self.mean:.1f} ({100 * self.std:.1f})"
            if len(self.values) > 1
            else f"{100 * self.mean:.1f}"
        )
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
            records,
            columns=["source", "method", "model", "k", "task", "metric", "mean", "std", "seeds"],
        )


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
    for (method, model, k, task, _seed), run in sorted(
        best_runs(runs).items(), key=lambda kv: kv[0][-1]
    ):
        chosen[(method, model, k, task)].append(run)
    return {
        key: Cell([run.test for run in group], seed_free=all(run.seed_free for run in group))
        for key, group in chosen.items()
    }


def order_key(name: str, order: list[str]) -> tuple:
    base = name.split("+")[0]  # "prompt+lora" sorts with "prompt", after it
    if base != name:
        return (*order_key(base, order), name)
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
    tasks = sorted(titles, key=lambda t: order_key(t, TASK_ORDER))
    row_keys = sorted(
        {(r.method, r.model, r.k) for r in runs},
        key=lambda key: (order_key(key[0], METHOD_ORDER), key[1:]),
    )
    rows = []
    for i, (method, model, k) in enumerate(row_keys):
        row_cells = {
            t: cells[(method, model, k, t)] for t in tasks if (method, model, k, t) in cells
        }
        rows.append(TableRow(method, method_titles[method], model, str(k), row_cells))
        last_of_method = i + 1 == len(row_keys) or row_keys[i + 1][0] != method
        if paper and last_of_method:
            rows += paper_rows([method], method_titles, tasks, metrics)
    if paper:
        rows += paper_rows([lmbff.FULL_DATA], lmbff.TITLES, tasks, metrics)
    return Table(tasks, titles, metrics, {t: len(s) for t, s in task_seeds.items()}, rows)


def paper_rows(
    methods: list[str], titles: dict[str, str], tasks: list[str], metrics: dict[str, str]
) -> list[TableRow]:
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
            rows.append(
                TableRow(
                    method,
                    f"{titles.get(method, method)} (LM-BFF paper)",
                    lmbff.MODEL,
                    k,
                    cells,
                    True,
                )
            )
    return rows


def build_table(runs: list[Run], paper: bool = False) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per method (and backbone, K), one column per task."""
    table = summarize(runs, paper)
    return table.header(), table.text_rows()
