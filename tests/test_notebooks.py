"""The notebooks run top to bottom (papermill) on tiny inputs, and are committed without outputs."""

import json
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import write_sst2_split
from fake_runs import fake_grid

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernel of this interpreter: a "python3" installed elsewhere may lack fewtune."""
    folder = tmp_path / "jupyter" / "kernels" / "fewtune-tests"
    folder.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fewtune tests",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "fewtune-tests"


def run_notebook(name: str, tmp_path: Path, kernel: str, **parameters) -> dict:
    """Execute notebooks/<name>.ipynb with ``parameters``; the outputs of each tagged cell, by tag."""
    import papermill

    out = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out),
        parameters=parameters,
        cwd=str(tmp_path),
        progress_bar=False,
        kernel_name=kernel,
    )
    cells = nbformat.read(out, as_version=4).cells
    return {tag: cell.outputs for cell in cells for tag in cell.metadata.get("tags", [])}


def texts(outputs, mime: str = "text/plain") -> str:
    return "".join(
        o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get(mime, "")
        for o in outputs
    )


def images(outputs) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.parametrize("name", ["results", "prompts"])
def test_committed_without_outputs_and_with_a_parameters_cell(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert code[0].metadata.get("tags") == ["parameters"]


def test_results_notebook_defaults_to_the_committed_runs():
    """Run without parameters, the notebook shows the README's grid: its default folders are in the repository."""
    cells = nbformat.read(NOTEBOOKS / "results.ipynb", as_version=4).cells
    parameters = next(
        cell.source for cell in cells if "parameters" in cell.metadata.get("tags", [])
    )
    defaults: dict = {}
    exec(parameters, defaults)
    project = NOTEBOOKS.parent
    assert defaults["runs"] and all((project / run).is_dir() for run in defaults["runs"])


def test_results_notebook_shows_table_bars_curve_and_params(tmp_path, kernel):
    grid = fake_grid(tmp_path / "grid")
    out = run_notebook(
        "results", tmp_path, kernel, runs=[str(grid)], paper=False, out=str(tmp_path / "written")
    )
    rows = texts(out["table"], "text/markdown").splitlines()
    assert rows[0] == "| Method | Model | K | SST-2 | MR |"
    assert rows[2:] == [
        "| Zero-shot prompt | tiny | 4 | 50.0 (0.0) | 50.0 (0.0) |",
        "| Zero-shot prompt | tiny | 16 | 50.0 (0.0) | 50.0 (0.0) |",
        "| Fine-tuning | tiny | 4 | 60.0 (10.0) | 60.0 (10.0) |",
        "| Fine-tuning | tiny | 16 | 70.0 (10.0) | 70.0 (10.0) |",
        "| Prompt-based FT | tiny | 4 | 70.0 (10.0) | 70.0 (10.0) |",
        "| Prompt-based FT | tiny | 16 | 80.0 (10.0) | 80.0 (10.0) |",
        "| Prompt-based FT + LoRA | tiny | 16 | 70.0 (10.0) | 70.0 (10.0) |",
    ]
    assert [images(out[tag]) for tag in ("bar_chart", "learning_curve", "params_accuracy")] == [
        1,
        1,
        1,
    ]
    assert {p.name for p in (tmp_path / "written").glob("*.png")} == {
        "bar_chart.png",
        "learning_curve.png",
        "params_accuracy.png",
    }


def test_prompts_notebook_shows_tokens_probabilities_and_template_accuracy(
    tiny_causal, tmp_path, kernel
):
    data = write_sst2_split(tmp_path / "data")
    templates = ["{sentence} It was {mask}", "Review: {sentence} Sentiment: {mask}"]
    out = run_notebook(
        "prompts",
        tmp_path,
        kernel,
        model="hf",
        templates=templates,
        n_examples=2,
        overrides=[f"model.path={tiny_causal}", "k=4", "seed=13", f"paths.data_dir={data}"],
    )
    tokens = texts(out["tokens"])
    assert tokens.count("It was {mask}") == 2 and tokens.count("[Ġwas]") == 2  # the slot, bracketed
    probs = texts(out["probs"])
    assert "p_cf: {'terrible':" in probs and "calibrated p(great)" in probs
    compare = texts(out["compare"])
    assert all(t in compare for t in templates) and "calibrated" in compare
