"""The table beyond text: best-on-dev over a grid, LM-BFF's numbers, PNGs, W&B, learning curves.

Runs are written by hand (config + metrics.json, as a run leaves them): no training here.
"""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fewtune.table import main, make_table

TASKS = {"sst2": ("SST-2", "acc"), "cola": ("CoLA", "mcc"), "mrpc": ("MRPC", "acc")}
METHODS = {"zeroshot": "Zero-shot prompt", "finetune": "Fine-tuning", "prompt": "Prompt-based FT"}


def fake_run(
    root: Path,
    name: str,
    task: str,
    method: str,
    seed: int,
    test: float,
    dev: float,
    k: int = 16,
    overrides: list[str] | None = None,
) -> Path:
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    title, metric = TASKS[task]
    cfg = {
        "task": {"name": task, "title": title, "metric": metric},
        "method": {"name": method, "title": METHODS[method]},
        "model": {"name": "smollm2-135m"},
        "k": k,
        "seed": seed,
    }
    OmegaConf.save(OmegaConf.create(cfg), folder / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(overrides or []), folder / ".hydra" / "overrides.yaml")
    (folder / "metrics.json").write_text(json.dumps({"test": {metric: test}, "best_dev": dev}))
    return folder


@pytest.fixture
def grid(tmp_path) -> Path:
    """sst2 and cola, prompt and finetune, seeds 13 and 21, two batch sizes each (a grid)."""
    root = tmp_path / "grid"
    i = 0
    for task in ("sst2", "cola"):
        for method in ("finetune", "prompt"):
            for seed in (13, 21):
                for bs, dev in ((2, 0.70), (4, 0.75)):
                    # the batch size that wins on dev has test = 0.8 (seed 13) or 0.9 (seed 21)
                    test = (0.8 if seed == 13 else 0.9) if bs == 4 else 0.1
                    fake_run(
                        root,
                        f"{i}_{task}-{method}-seed{seed}-bs{bs}",
                        task,
                        method,
                        seed,
                        test,
                        dev,
                    )
                    i += 1
    return root


def test_best_on_dev_per_seed_then_mean_and_std(grid, tmp_path):
    make_table([grid], tmp_path)
    rows = (tmp_path / "table.md").read_text().splitlines()
    assert rows[0] == "| Method | Model | K | SST-2 | CoLA (MCC) |"
    assert rows[2] == "| Fine-tuning | smollm2-135m | 16 | 85.0 (5.0) | 85.0 (5.0) |"


def test_paper_numbers_beside_ours_with_the_citation(grid, tmp_path):
    fake_run(
        grid, "99_mrpc-prompt-seed13", "mrpc", "prompt", 13, 0.7, 0.7
    )  # acc, not the paper's F1
    out = make_table([grid], tmp_path, paper=True)
    lines = (tmp_path / "table.md").read_text().splitlines()
    assert lines[2:7] == [
        "| Fine-tuning | smollm2-135m | 16 | 85.0 (5.0) | 85.0 (5.0) | - |",
        "| Fine-tuning (LM-BFF paper) | roberta-large | 16 | 81.4 (3.8) | 33.9 (14.3) | - |",
        "| Prompt-based FT | smollm2-135m | 16 | 85.0 (5.0) | 85.0 (5.0) | 70.0 |",
        "| Prompt-based FT (LM-BFF paper) | roberta-large | 16 | 92.7 (0.9) | 9.3 (7.3) | - |",
        "| Full-data FT (LM-BFF paper) | roberta-large | all | 95.0 | 62.6 | - |",
    ]
    assert "Gao, Fisch and Chen, ACL 2021" in lines[-1] and "Table 3" in lines[-1]
    assert "Gao, Fisch and Chen, ACL 2021" in out
    tex = (tmp_path / "table.tex").read_text()
    assert (
        r"\multicolumn{6}{l}{\footnotesize Rows marked (LM-BFF paper): Gao, Fisch and Chen" in tex
    )
    assert (
        "Prompt-based FT (LM-BFF paper),roberta-large,16,92.7 (0.9)"
        in (tmp_path / "table.csv").read_text()
    )
    # without --paper, none of it
    make_table([grid], tmp_path / "plain")
    assert "LM-BFF" not in (tmp_path / "plain" / "table.md").read_text()


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bar_chart_png_beside_the_table(grid, tmp_path):
    out = make_table([grid], tmp_path, paper=True)
    assert _is_png(tmp_path / "bar_chart.png")
    assert not (tmp_path / "learning_curve.png").exists()  # one K: no curve
    assert "bar_chart.png in" in out


def test_learning_curve_when_runs_have_several_k(tmp_path):
    root = tmp_path / "curve"
    for k in (4, 8, 16):
        for seed in (13, 21):
            for method in ("finetune", "prompt"):
                fake_run(
                    root,
                    f"{method}-k{k}-seed{seed}",
                    "sst2",
                    method,
                    seed,
                    0.5 + k / 100 + seed / 1000,
                    0.5,
                    k=k,
                )
    out = make_table([root], tmp_path / "out")
    assert _is_png(tmp_path / "out" / "learning_curve.png") and _is_png(
        tmp_path / "out" / "bar_chart.png"
    )
    assert "learning_curve.png" in out
    rows = (tmp_path / "out" / "table.md").read_text().splitlines()[2:]
    assert [row.split(" | ")[2] for row in rows] == ["4", "8", "16", "4", "8", "16"]


def test_sweep_params_count_in_missing_jobs(tmp_path):
    root = tmp_path / "sweep"
    # Hydra writes the sweep config's params into multirun.yaml and the command line's overrides.
    sweep = {
        "hydra": {
            "sweeper": {"params": {"seed": "13,21", "batch_size": "2,4"}},
            "overrides": {"task": ["task=sst2", "method=prompt"]},
        }
    }
    root.mkdir()
    OmegaConf.save(OmegaConf.create(sweep), root / "multirun.yaml")
    for i, (seed, bs) in enumerate([(13, 2), (13, 4), (21, 2)]):
        overrides = [f"seed={seed}", f"batch_size={bs}", "task=sst2", "method=prompt"]
        fake_run(
            root,
            f"{i}_sst2-prompt-seed{seed}",
            "sst2",
            "prompt",
            seed,
            0.8,
            0.7,
            overrides=overrides,
        )
    out = make_table([root], tmp_path / "out")
    assert "3 of 3 runs complete" in out
    assert (
        out.count("missing:") == 1 and "job 'seed=21 batch_size=4 task=sst2 method=prompt'" in out
    )


def test_wandb_table_logged_offline(grid, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = make_table([grid], tmp_path / "out", paper=True, wandb=True)
    assert "logged to W&B (offline)" in out
    (run,) = (tmp_path / "wandb-home" / "wandb").glob("offline-run-*")
    media = run / "files" / "media" / "table"
    table = json.loads(next(media.glob("table_*.table.json")).read_text())
    assert table["columns"] == ["Method", "Model", "K", "SST-2", "CoLA (MCC)"]
    assert [
        "Prompt-based FT (LM-BFF paper)",
        "roberta-large",
        "16",
        "92.7 (0.9)",
        "9.3 (7.3)",
    ] in table["data"]
    cells = json.loads(next(media.glob("cells_*.table.json")).read_text())
    assert cells["columns"][:6] == ["source", "method", "model", "k", "task", "metric"]
    assert list((run / "files" / "media" / "images").glob("bar_chart_*.png"))


def test_table_cli_flags(grid, tmp_path, capsys):
    assert main([str(grid), "--paper", "--out", str(tmp_path / "cli")]) == 0
    assert "Full-data FT (LM-BFF paper)" in capsys.readouterr().out
    assert _is_png(tmp_path / "cli" / "bar_chart.png")


def test_a_table_before_any_run_has_finished_lists_them_and_draws_nothing(tmp_path):
    run = fake_run(tmp_path / "grid", "0_sst2-prompt-seed13", "sst2", "prompt", 13, 0.8, 0.8)
    (run / "metrics.json").unlink()  # still running
    out = make_table([tmp_path / "grid"], tmp_path / "out")
    assert "0 of 1 runs complete" in out and f"incomplete (killed or still running): {run}" in out
    assert not list((tmp_path / "out").glob("*.png"))
