"""Trainable parameters against the test metric: what each peft method buys per parameter.

One panel per task; one point per method (and backbone, K) at its number of trainable
parameters (log scale), mean and std over seeds of the best-on-dev runs, each seed a dot.
Full fine-tuning (peft=none) is drawn too, as the reference the peft methods are measured
against; zero-shot and in-context learning train nothing and are left out.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import median

from fewtune.report.figures import panel_grid, shared_legend
from fewtune.report.summary import TASK_ORDER, best_runs, order_key


def params_points(runs) -> dict[str, dict[tuple, tuple[int, list[float]]]]:
    """task -> {(method title, model, k): (trainable params, test values of the seeds)}."""
    points: dict[str, dict[tuple, list]] = defaultdict(lambda: defaultdict(list))
    for run in best_runs(runs).values():
        if run.trains and run.trainable_params:
            points[run.task][(run.method_title, run.model, run.k)].append(run)
    return {
        task: {
            key: (int(median(r.trainable_params for r in rs)), [r.test for r in rs])
            for key, rs in rows.items()
        }
        for task, rows in points.items()
    }


def params_accuracy_figure(runs):
    """The figure, or None where no run is parameter-efficient (or none recorded its parameters)."""
    peft_runs = [
        r for r in runs if r.status == "completed" and r.peft != "none" and r.trainable_params
    ]
    if not peft_runs:
        return None
    points = params_points(runs)
    titles = {
        r.task: r.task_title + ("" if r.metric == "acc" else f" ({r.metric.upper()})") for r in runs
    }
    tasks = sorted(points, key=lambda t: order_key(t, TASK_ORDER))
    fig, axes = panel_grid(len(tasks), ncols=3, size=(2.8, 2.3))
    colors = {}
    for i, (ax, task) in enumerate(zip(axes, tasks)):
        for (title, model, k), (params, values) in sorted(
            points[task].items(), key=lambda kv: kv[1][0]
        ):
            label = f"{title} · {model} · K={k}"
            color = colors.setdefault(label, f"C{len(colors) % 10}")
            mean = 100 * sum(values) / len(values)
            std = 100 * (sum((v - mean / 100) ** 2 for v in values) / len(values)) ** 0.5
            ax.errorbar(
                [params],
                [mean],
                yerr=[std],
                marker="o",
                markersize=4,
                capsize=2,
                color=color,
                label=label,
            )
            ax.scatter(
                [params] * len(values),
                [100 * v for v in values],
                s=6,
                color="black",
                alpha=0.6,
                zorder=3,
            )
        ax.set_xscale("log")
        ax.set_title(titles[task], fontsize=8)
        ax.set_xlabel("trainable parameters", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i % 3 == 0:
            ax.set_ylabel("test metric (%), mean ± std; dots: seeds", fontsize=7)
    shared_legend(fig, axes)
    return fig
