"""python -m fewtune.archive: the kept files rebuild the same table without checkpoints."""

from __future__ import annotations

import pytest

from fake_runs import fake_grid
from fewtune.archive import archive, main
from fewtune.table import make_table


def test_an_archive_rebuilds_the_same_table_and_leaves_checkpoints_behind(tmp_path):
    grid = fake_grid(tmp_path / "grid")
    run = next(grid.iterdir())
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    (run / "train.log").write_text("log")

    copied = archive([grid], tmp_path / "results")

    kept = tmp_path / "results" / "grid"
    assert copied == 2 * len(list(grid.iterdir()))  # config.yaml and metrics.json per run
    assert (
        not (kept / run.name / "checkpoints").exists()
        and not (kept / run.name / "train.log").exists()
    )
    make_table([grid], tmp_path / "t1")
    make_table([kept], tmp_path / "t2")
    rebuilt = (tmp_path / "t2" / "table.md").read_text()
    assert rebuilt == (tmp_path / "t1" / "table.md").read_text() and "Prompt-based FT" in rebuilt


def test_a_folder_without_runs_is_refused_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "empty"), "--out", str(tmp_path / "results")])
    assert (
        str(exit_.value)
        == f"error: no runs (folders with .hydra/config.yaml) under {tmp_path / 'empty'}; nothing to archive"
    )
