"""What each method (and peft method) trains, stores and costs, beside its test metric.

    python -m fewtune.table <multirun dirs> --costs     # also writes costs.md and costs.csv

One row per task and method: trainable parameters and their share of the model, the bytes a
run stores for the task, the mean training step time, the job's CPU time and peak memory (means
over the seeds' best-on-dev runs, read from their metrics.json; the GPU's peak too where runs used one), and the test metric's mean (std) over seeds.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import fmean

from fewtune.jobs.atomic import write_file_atomic
from fewtune.report.formats import to_csv, to_markdown
from fewtune.report.summary import Cell, best_runs, order_key

HEADER = ["Task", "Method", "Model", "Trainable params", "Share", "Stored per task", "Step time (s)",
          "CPU time per seed (s)", "Peak RSS (MB)"]  # fmt: skip


def _size(n_bytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes:.0f} B"


def _count(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def _or_dash(value, fmt) -> str:
    # Runs made before a field existed (or zero-shot runs without steps) show "-".
    return "-" if value is None else fmt(value)


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return fmean(values) if values else None


def cost_rows(
    runs: list, task_order: list[str], method_order: list[str]
) -> tuple[list[str], list[list[str]]]:
    """(header, rows) over the best-on-dev run of each seed, as the main table selects."""
    groups: dict[tuple, list] = defaultdict(list)
    for (method, model, k, task, _seed), run in best_runs(runs).items():
        groups[(task, method, model, k)].append(run)
    ordered = sorted(
        groups,
        key=lambda key: (order_key(key[0], task_order), order_key(key[1], method_order), key[2:]),
    )
    metric_names = sorted({groups[key][0].metric for key in ordered})
    # Runs on a GPU also report the GPU's peak memory: a column of its own, only then.
    on_gpu = any(run.metrics.get("peak_gpu_mb") for key in ordered for run in groups[key])
    header = HEADER + ["Peak GPU (MB)"] * on_gpu + [f"Test {m}" for m in metric_names]
    rows = []
    for key in ordered:
        group = groups[key]
        metrics = [run.metrics for run in group]
        first = metrics[0]
        step = _mean([m.get("step_time_s") for m in metrics])
        rss = _mean([m.get("peak_rss_mb") for m in metrics])
        cpu = _mean(
            [m.get("cpu_time_s") for m in metrics]
        )  # the whole job's: loading, training, dev, test
        gpu = _mean([m.get("peak_gpu_mb") for m in metrics])
        cell = Cell([run.test for run in group]).text(len(group))
        rows.append([
            group[0].task_title, group[0].method_title, key[2],
            _or_dash(first.get("trainable_params"), _count),
            _or_dash(first.get("trainable_share"), lambda share: f"{100 * share:.3g}%"),
            _or_dash(first.get("task_storage_bytes"), _size),
            _or_dash(step, lambda v: f"{v:.2f}"),
            _or_dash(cpu, lambda v: f"{v:.0f}"),
            _or_dash(rss, lambda v: f"{v:.0f}"),
            *[_or_dash(gpu, lambda v: f"{v:.0f}")] * on_gpu,
            *[cell if group[0].metric == m else "" for m in metric_names],
        ])  # fmt: skip
    return header, rows


def write_costs(
    runs: list, out: Path, task_order: list[str], method_order: list[str]
) -> tuple[str, list[str]]:
    """costs.md and costs.csv in ``out``; returns the Markdown and the file names."""
    header, rows = cost_rows(runs, task_order, method_order)
    markdown = to_markdown(header, rows)
    write_file_atomic(out / "costs.md", markdown)
    write_file_atomic(out / "costs.csv", to_csv(header, rows))
    return markdown, ["costs.md", "costs.csv"]
