"""The table as figures: a bar chart of mean and std per task with every seed as a dot, a
learning curve over K, and trainable parameters against the test metric for peft runs.

Each ``*_figure`` function returns a matplotlib figure (a notebook shows it); the functions
without the suffix write it as a PNG beside table.md (matplotlib's Agg backend unless the
caller already chose one, e.g. a notebook's inline backend: no display needed).
"""

from __future__ import annotations

from pathlib import Path

from fewtune.report.figures import pyplot, save_figure
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
    """Grouped bars: one group per task, one bar per table row, std as error bars; paper rows
    hatched. ``dots``: each seed's own result as a dot on its bar, so the spread is visible."""
    import pandas as pd

    plt = pyplot()
    labels = [_label(row) for row in table.rows]
    columns = [table.column(t) for t in table.tasks]

    def frame(value) -> pd.DataFrame:
        return pd.DataFrame(
            {label: [value(row.cells.get(t)) for t in table.tasks] for label, row in zip(labels, table.rows)},
            index=columns,
        )

    means = frame(lambda cell: None if cell is None else 100 * cell.mean)
    # NaN, not 0, where there is no std: no error bar is drawn (0 drew a cap at y=0 for a missing cell)
    stds = frame(lambda cell: float("nan") if cell is None or cell.std is None else 100 * cell.std)
    width = max(6.0, 1.1 * len(table.tasks) * max(1, len(table.rows)) ** 0.5 + 2)
    fig, ax = plt.subplots(figsize=(width, 4.5))
    means.plot.bar(ax=ax, yerr=stds, capsize=3, rot=0, width=0.8, error_kw={"elinewidth": 1}, color=_colors(table.rows))
    from matplotlib.container import BarContainer

    bars = [c for c in ax.containers if isinstance(c, BarContainer)]  # the error bars are containers too
    for container, row in zip(bars, table.rows):
        if row.paper:
            for bar in container:
                bar.set_hatch("//")
        elif dots:
            _seed_dots(ax, container, [row.cells.get(t) for t in table.tasks])
    if dots and any(len(getattr(c, "values", ())) > 1 for row in table.rows for c in row.cells.values()):
        ax.scatter([], [], s=9, color="black", label="one dot per seed")  # the legend's entry
    if table.has_paper:
        ax.set_title("hatched: LM-BFF (Gao, Fisch and Chen, ACL 2021), Table 3", fontsize=9)
    ax.set_ylabel("test metric (%), mean ± std over seeds")
    ax.set_ylim(bottom=min(0.0, float(means.min().min()) - 5) if means.notna().any().any() else 0)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i] == "one dot per seed")  # the bars first
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


def _seed_dots(ax, bars, cells) -> None:
    """One dot per seed over its bar, spread across the bar so that equal results stay visible."""
    for bar, cell in zip(bars, cells):
        values = [] if cell is None else cell.values
        if len(values) < 2:
            continue
        left, width = bar.get_x(), bar.get_width()
        xs = [left + width * (0.25 + 0.5 * i / (len(values) - 1)) for i in range(len(values))]
        ax.scatter(xs, [100 * v for v in values], s=9, color="black", alpha=0.75, zorder=3, linewidths=0)


def learning_curve(table, path: Path) -> Path | None:
    """``learning_curve_figure`` as a PNG; None where the runs have one K."""
    fig = learning_curve_figure(table)
    return None if fig is None else save_figure(fig, path)


def learning_curve_figure(table):
    """Test metric against K, one line per method and backbone, one panel per task; None if one K."""
    plt = pyplot()
    ours = [row for row in table.rows if not row.paper]
    ks = sorted({int(row.k) for row in ours})
    if len(ks) < 2:
        return None
    n = len(table.tasks)
    ncols = min(n, 4)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False)
    lines = {}
    for row in ours:
        lines.setdefault((row.title, row.model), []).append(row)
    for ax, task in zip(axes.flat, table.tasks):
        for (title, model), rows in lines.items():
            points = sorted((int(r.k), r.cells[task]) for r in rows if task in r.cells)
            if points:
                x = [k for k, _ in points]
                y = [100 * c.mean for _, c in points]
                err = [100 * (c.std or 0.0) for _, c in points]
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{title} · {model}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(table.column(task))
        ax.set_xlabel("K (examples per label)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    axes.flat[0].set_ylabel("test metric (%), mean ± std")
    legend = {}  # one entry per line, from whichever panel has it
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), fontsize=8, loc="lower center", ncol=min(3, max(1, len(legend))),
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def write_plots(table, out: Path, runs=None) -> list[Path]:
    """The PNGs written for this table: the learning curve only where there are several K, the
    parameters-vs-metric plot only where ``runs`` has peft runs."""

    if not any(row.cells for row in table.rows if not row.paper):
        return []  # no run has finished yet: the table lists them, there is nothing to draw
    written = [bar_chart(table, out / BAR_CHART)]
    curve = learning_curve(table, out / LEARNING_CURVE)
    params = params_accuracy_figure(runs) if runs else None
    return written + ([curve] if curve else []) + ([save_figure(params, out / PARAMS_ACCURACY)] if params else [])
