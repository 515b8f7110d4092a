"""The table's figures as objects: a dot per seed on the bars, and trainable parameters against
the test metric for parameter-efficient runs (also written by the table command)."""

import math

import pytest

from fake_runs import fake_grid, fake_run
from fewtune.report.params import params_accuracy_figure, params_points
from fewtune.report.plots import bar_chart_figure, learning_curve_figure
from fewtune.report.runs import collect_runs
from fewtune.report.summary import summarize
from fewtune.table import make_table


@pytest.fixture
def runs(tmp_path):
    return collect_runs([fake_grid(tmp_path / "grid")])


def _scatters(ax):
    from matplotlib.collections import PathCollection  # error bars are LineCollections

    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _dots(fig) -> list[float]:
    return sorted(
        y for ax in fig.axes for collection in _scatters(ax) for _, y in collection.get_offsets()
    )


def test_bar_chart_has_one_dot_per_seed_at_its_result(runs):
    table = summarize(runs, paper=True)
    fig = bar_chart_figure(table, dots=True)
    ours = [cell for row in table.rows if not row.paper for cell in row.cells.values()]
    assert _dots(fig) == pytest.approx(sorted(100 * v for cell in ours for v in cell.values))
    assert "one dot per seed" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert _dots(bar_chart_figure(table, dots=False)) == []


def test_bar_chart_is_small_multiples_a_page_can_hold(runs):
    """One panel per task (its column title, a bar per row that has the cell), four panels a row,
    one shared legend: under 1,000 px wide at the saved dpi, where one strip of tasks was 3,874."""
    from matplotlib.patches import Rectangle

    table = summarize(runs, paper=True)
    fig = bar_chart_figure(table)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [table.column(t) for t in table.tasks]
    for ax, task in zip(panels, table.tasks):
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() != 0]
        expected = [100 * row.cells[task].mean for row in table.rows if task in row.cells]
        assert sorted(b.get_height() for b in bars) == pytest.approx(sorted(expected))
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in panels)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert (
        len(labels) == len(set(labels)) == len(table.rows) + 1
    )  # every row once, and the seeds' dot
    width_px = fig.get_size_inches()[0] * 120  # table_plots saves at dpi 120
    assert width_px <= 1000


def test_bar_chart_of_eleven_tasks_wraps_into_rows_of_four(tmp_path):
    from fewtune.report.summary import Cell, Table, TableRow

    tasks = [f"t{i}" for i in range(11)]
    rows = [
        TableRow("prompt", "Prompt-based FT", "tiny", "16", {t: Cell([0.5, 0.7]) for t in tasks})
    ]
    table = Table(
        tasks,
        {t: t.upper() for t in tasks},
        dict.fromkeys(tasks, "acc"),
        dict.fromkeys(tasks, 2),
        rows,
    )
    fig = bar_chart_figure(table)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 11 and len(fig.axes) == 12  # 3 rows of 4, the last cell empty
    assert len({round(ax.get_position().x0, 3) for ax in visible}) == 4


def test_bar_chart_draws_no_error_bar_where_a_cell_has_no_spread(runs):
    """A missing cell (the paper's '-') or a paper number without a std gets no error bar: nothing drawn at 0."""
    from matplotlib.container import ErrorbarContainer

    table = summarize(runs, paper=True)
    fig = bar_chart_figure(table, dots=False)
    caps = [
        y
        for ax in fig.axes
        for c in ax.containers
        if isinstance(c, ErrorbarContainer)
        for line in c.lines[1]
        for y in line.get_ydata()
        if not math.isnan(y)
    ]
    cells = [row.cells.get(task) for row in table.rows for task in table.tasks]
    assert None in cells  # the paper has no number for some of the grid's cells
    assert len(caps) == 2 * sum(
        cell is not None and cell.std is not None for cell in cells
    )  # below and above


def test_no_params_plot_without_peft_runs_even_with_calibrated_zero_shot(tmp_path):
    """A calibrated zero-shot row ("zeroshot+calibrated") is not a peft method and trains nothing."""
    from omegaconf import OmegaConf

    for seed in (13, 21):
        fake_run(tmp_path, "sst2", "prompt", seed, 0.8, trainable=135_000_000)
        config = (
            fake_run(tmp_path, "sst2", "zeroshot", seed, 0.6, trainable=135_000_000)
            / ".hydra"
            / "config.yaml"
        )
        cfg = OmegaConf.load(config)
        cfg.method.calibrate = True
        OmegaConf.save(cfg, config)
    runs = collect_runs([tmp_path])
    assert "zeroshot+calibrated" in {r.method for r in runs}
    assert params_accuracy_figure(runs) is None
    assert [title for title, _, _ in params_points(runs)["sst2"]] == ["Prompt-based FT"]


def test_params_plot_puts_each_method_at_its_trainable_parameters(runs):
    points = params_points(runs)
    assert set(points) == {"sst2", "mr"}
    sst2 = points["sst2"]
    assert sst2[("Prompt-based FT + LoRA", "tiny", 16)] == (460_000, pytest.approx([0.6, 0.8]))
    assert sst2[("Prompt-based FT", "tiny", 16)][0] == 135_000_000
    assert not any(title.startswith("Zero-shot") for title, _, _ in sst2)  # trains nothing
    fig = params_accuracy_figure(runs)
    xs = {x for collection in _scatters(fig.axes[0]) for x, _ in collection.get_offsets()}
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [
        "SST-2",
        "MR",
    ]  # a panel per task
    assert fig.get_size_inches()[0] * 120 <= 1000
    assert {460_000, 135_000_000} <= xs


def test_no_params_plot_without_peft_runs_and_no_curve_with_one_k(tmp_path):
    for seed in (13, 21):
        fake_run(tmp_path / "plain", "sst2", "prompt", seed, 0.8)
    runs = collect_runs([tmp_path / "plain"])
    assert params_accuracy_figure(runs) is None
    fake_run(
        tmp_path / "plain", "sst2", "prompt", 13, 0.8, peft="lora", trainable=None
    )  # before the count existed
    assert params_accuracy_figure(collect_runs([tmp_path / "plain"])) is None
    assert learning_curve_figure(summarize(runs)) is None


def test_table_command_writes_the_params_plot_for_peft_runs(tmp_path):
    out = make_table([fake_grid(tmp_path / "grid")], tmp_path / "out")
    assert "params_accuracy.png" in out and "learning_curve.png" in out
    assert (tmp_path / "out" / "params_accuracy.png").read_bytes()[:4] == b"\x89PNG"
