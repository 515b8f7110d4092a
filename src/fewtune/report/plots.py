"""The table as figures: a bar chart of mean and std per task with every seed as a dot, a
learning curve over K, and trainable parameters against the test metric for peft runs.

Each ``*_figure`` function returns a matplotlib figure (a notebook shows it); the functions
without the suffix write it as a PNG beside table.md (matplotlib's Agg backend unless the
caller already chose one, e.g. a notebook's inline backend: no display needed).
"""

from __future__ import annotations

from pathlib import Path

from fewtune.report.figures import PANEL_COLUMNS, panel_grid, save_figure, shared_legend
from fewtune.report.params import params_accuracy_figure

BAR_CHART = "bar_chart.png"
LEARNING_CURVE = "learning_curve.png"
PARAMS_ACCURACY = "params_accuracy.png"


def _label(row) -> str:
    return f"{row.title} · {row.model} · K={row.k}"


def _colors(rows) -> list:
    """One colour per row; a paper row takes the colour of our row of the same method before it."""
    from matplotlib import colormaps

    palette, colors, by_method = colormaps["tab10"].colors, [], {}
    for row in rows:
        if row.paper and row.method in by_method:
            colors.append(by_method[row.method])
        else:
            colors.append(palette[len(set(map(str, colors))) % len(palette)])
            by_method.setdefault(row.method, colors[-1])
    return colors


def bar_chart(table, path: Path, dots: bool = True) -> Path:
    """``bar_chart_figure`` as a PNG."""
    return save_figure(bar_chart_figure(table, dots), path)


def bar_chart_figure(table, dots: bool = True):
    """Small multiples: one panel per task, in it one bar per table row (the same colour in every
    panel), std as error bars, paper rows hatched. ``dots``: each seed's own result as a dot on
    its bar, so the spread is visible. Each panel has its own y-axis, as metrics differ (MCC)."""
    colors = _colors(table.rows)
    fig, axes = panel_grid(len(table.tasks))
    for i, (ax, task) in enumerate(zip(axes, table.tasks)):
        lows = [0.0]
        for x, (row, color) in enumerate(zip(table.rows, colors)):
            cell = row.cells.get(task)
            if cell is None:
                continue
            mean, std = 100 * cell.mean, None if cell.std is None else 100 * cell.std
            bars = ax.bar(
                x,
                mean,
                width=0.8,
                color=color,
                label=_label(row),
                hatch="//" if row.paper else None,
                yerr=std,
                capsize=2,
                error_kw={"elinewidth": 1},
            )
            values = [] if row.paper else [100 * v for v in cell.values]
            lows += [mean - (std or 0.0), *values]
            if dots and not row.paper:
                _seed_dots(ax, bars, [cell])
        ax.set_title(table.column(task), fontsize=8)
        ax.set_xticks([])
        ax.set_xlim(-0.6, len(table.rows) - 0.4)
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        if min(lows) < 0:  # MCC can be negative: room below zero for the bars and dots
            ax.set_ylim(bottom=min(lows) - 5)
        if i % PANEL_COLUMNS == 0:
            ax.set_ylabel("test metric (%)", fontsize=7)
    seeds = "one dot per seed"
    if dots and any(
        len(getattr(c, "values", ())) > 1 for row in table.rows for c in row.cells.values()
    ):
        axes[0].scatter([], [], s=9, color="black", label=seeds)  # the legend's entry
    if table.has_paper:
        fig.suptitle(
            "mean ± std over seeds; hatched: LM-BFF (Gao, Fisch and Chen, ACL 2021), Table 3",
            fontsize=8,
        )
    shared_legend(fig, axes, first=(seeds,))
    return fig


def _seed_dots(ax, bars, cells) -> None:
    """One dot per seed over its bar, spread across the bar so that equal results stay visible."""
    for bar, cell in zip(bars, cells):
        values = [] if cell is None else cell.values
        if len(values) < 2:
            continue
        left, width = bar.get_x(), bar.get_width()
        xs = [left + width * (0.25 + 0.5 * i / (len(values) - 1)) for i in range(len(values))]
        ax.scatter(
            xs, [100 * v for v in values], s=6, color="black", alpha=0.75, zorder=3, linewidths=0
        )


def learning_curve(table, path: Path) -> Path | None:
    """``learning_curve_figure`` as a PNG; None where the runs have one K."""
    fig = learning_curve_figure(table)
    return None if fig is None else save_figure(fig, path)


def learning_curve_figure(table):
    """Test metric against K, one line per method and backbone, one panel per task; None if one K."""
    ours = [row for row in table.rows if not row.paper]
    ks = sorted({int(row.k) for row in ours})
    if len(ks) < 2:
        return None
    fig, axes = panel_grid(len(table.tasks), size=(2.1, 2.1))
    lines = {}
    for row in ours:
        lines.setdefault((row.title, row.model), []).append(row)
    for i, (ax, task) in enumerate(zip(axes, table.tasks)):
        for (title, model), rows in lines.items():
            points = sorted((int(r.k), r.cells[task]) for r in rows if task in r.cells)
            if points:
                x = [k for k, _ in points]
                y = [100 * c.mean for _, c in points]
                err = [100 * (c.std or 0.0) for _, c in points]
                ax.errorbar(
                    x, y, yerr=err, marker="o", markersize=3, capsize=2, label=f"{title} · {model}"
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(table.column(task), fontsize=8)
        ax.set_xlabel("K (examples per label)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i % PANEL_COLUMNS == 0:
            ax.set_ylabel("test metric (%), mean ± std", fontsize=7)
    shared_legend(fig, axes)
    return fig


def write_plots(table, out: Path, runs=None) -> list[Path]:
    """The PNGs written for this table: the learning curve only where there are several K, the
    parameters-vs-metric plot only where ``runs`` has peft runs."""

    if not any(row.cells for row in table.rows if not row.paper):
        return []  # no run has finished yet: the table lists them, there is nothing to draw
    written = [bar_chart(table, out / BAR_CHART)]
    curve = learning_curve(table, out / LEARNING_CURVE)
    params = params_accuracy_figure(runs) if runs else None
    return (
        written
        + ([curve] if curve else [])
        + ([save_figure(params, out / PARAMS_ACCURACY)] if params else [])
    )
