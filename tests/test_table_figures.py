"""The table's figures as objects: a dot per seed on the bars, and trainable parameters against
the test metric for parameter-efficient runs (also written by the table command)."""

import pytest

from fake_runs import fake_grid, fake_run
from fewtune.table import make_table
from fewtune.report.summary import summarize
from fewtune.report.runs import collect_runs
from fewtune.report.params import params_accuracy_figure, params_points
from fewtune.report.plots import bar_chart_figure, learning_curve_figure


@pytest.fixture
def runs(tmp_path):
    return collect_runs([fake_grid(tmp_path / "grid")])


def _scatters(ax):
    from matplotlib.collections import PathCollection  # error bars are LineCollections

    return [c for c in ax.collections if isinstance(c, PathCollection)]


def _dots(ax) -> list[float]:
    return sorted(y for collection in _scatters(ax) for _, y in collection.get_offsets())


def test_bar_chart_has_one_dot_per_seed_at_its_result(runs):
    table = summarize(runs, paper=True)
    ax = bar_chart_figure(table, dots=True).axes[0]
    ours = [cell for row in table.rows if not row.paper for cell in row.cells.values()]
    assert _dots(ax) == pytest.approx(sorted(100 * v for cell in ours for v in cell.values))
    assert "one dot per seed" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert _dots(bar_chart_figure(table, dots=False).axes[0]) == []


def test_bar_chart_draws_no_error_bar_where_a_cell_has_no_spread(runs):
    """A missing cell (the paper's '-') or a paper number without a std gets no error bar: nothing drawn at 0."""
    from matplotlib.container import ErrorbarContainer

    table = summarize(runs, paper=True)
    ax = bar_chart_figure(table, dots=False).axes[0]
    caps = [y for c in ax.containers if isinstance(c, ErrorbarContainer)
            for line in c.lines[1] for y in line.get_ydata() if y == y]  # y == y: not NaN
    cells = [row.cells.get(task) for row in table.rows for task in table.tasks]
    assert None in cells  # the paper has no number for some of the grid's cells
    assert len(caps) == 2 * sum(cell is not None and cell.std is not None for cell in cells)  # below and above


def test_no_params_plot_without_peft_runs_even_with_calibrated_zero_shot(tmp_path):
    """A calibrated zero-shot row ("zeroshot+calibrated") is not a peft method and trains nothing."""
    from omegaconf import OmegaConf

    for seed in (13, 21):
        fake_run(tmp_path, "sst2", "prompt", seed, 0.8, trainable=135_000_000)
        config = fake_run(tmp_path, "sst2", "zeroshot", seed, 0.6, trainable=135_000_000) / ".hydra" / "config.yaml"
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
    assert {460_000, 135_000_000} <= xs


def test_no_params_plot_without_peft_runs_and_no_curve_with_one_k(tmp_path):
    for seed in (13, 21):
        fake_run(tmp_path / "plain", "sst2", "prompt", seed, 0.8)
    runs = collect_runs([tmp_path / "plain"])
    assert params_accuracy_figure(runs) is None
    fake_run(tmp_path / "plain", "sst2", "prompt", 13, 0.8, peft="lora", trainable=None)  # before the count existed
    assert params_accuracy_figure(collect_runs([tmp_path / "plain"])) is None
    assert learning_curve_figure(summarize(runs)) is None


def test_table_command_writes_the_params_plot_for_peft_runs(tmp_path):
    out = make_table([fake_grid(tmp_path / "grid")], tmp_path / "out")
    assert "params_accuracy.png" in out and "learning_curve.png" in out
    assert (tmp_path / "out" / "params_accuracy.png").read_bytes()[:4] == b"\x89PNG"
