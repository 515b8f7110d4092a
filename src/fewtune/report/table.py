"""The table and everything drawn from it, written to one folder: table.md, table.tex,
table.csv, runs.csv (every run, whether its number is in the table, its config hash and git
commit), the figures (report/plots.py), where runs stored per-example predictions a paired
significance test between rows (marks in table.md/.tex, significance.csv) and confusion
matrices (fewtune/predictions/tables.py), with --costs costs.md/.csv (report/costs.py), with
--wandb a W&B run (report/wandb.py). ``python -m fewtune.table`` is its command line.
"""

from __future__ import annotations

from pathlib import Path

from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_file_atomic
from fewtune.report import paper as lmbff
from fewtune.report.costs import write_costs
from fewtune.report.formats import to_csv, to_latex, to_markdown
from fewtune.report.plots import write_plots
from fewtune.report.runs import collect_runs, problems
from fewtune.report.runs_csv import runs_csv
from fewtune.report.summary import METHOD_ORDER, TASK_ORDER, best_runs, summarize


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
        raise FewtuneError(
            f"no runs (folders with .hydra/config.yaml) under {', '.join(map(str, roots))}"
        )
    table = summarize(runs, paper)
    header, rows = table.header(), table.text_rows()
    note = paper_note() if table.has_paper else ""
    out = out or roots[0]
    out.mkdir(parents=True, exist_ok=True)
    from fewtune.predictions.tables import significance_and_confusion

    # runs with stored predictions: significance marks (and significance.csv), confusion matrices
    extra = significance_and_confusion(table, best_runs(runs), out, resamples)
    markdown = to_markdown(
        header, extra.rows(rows, table, "markdown"), extra.note(note, "markdown")
    )
    write_file_atomic(out / "table.md", markdown)
    write_file_atomic(
        out / "table.tex",
        to_latex(header, extra.rows(rows, table, "latex"), extra.note(note, "latex")),
    )
    write_file_atomic(out / "table.csv", to_csv(header, rows))
    write_file_atomic(
        out / "runs.csv", runs_csv(runs, best_runs(runs))
    )  # which runs each cell came from
    written = ["table.md", "table.tex", "table.csv", "runs.csv"] + [
        p.name for p in write_plots(table, out, runs)
    ]
    written += extra.written
    if costs:
        costs_markdown, costs_files = write_costs(runs, out, TASK_ORDER, METHOD_ORDER)
        markdown += "\n" + costs_markdown
        written += costs_files
    report = problems(roots, runs)
    complete = len(
        {r.path for r in runs if r.status == "completed"}
    )  # a PET run has two rows, one folder
    summary = [
        f"{complete} of {len({r.path for r in runs})} runs complete; {', '.join(written)} in {out}"
    ]
    if wandb:
        from fewtune.report.wandb import log_table  # wandb only when asked for

        summary.append(
            log_table(
                table, out, [out / name for name in written if name.endswith(".png")], project
            )
        )
    return "\n".join([markdown, *summary, *report]) + "\n"
