"""A cell over fewer seeds than its task's other cells says so, unless one seed stands for all."""

from fake_runs import fake_run
from fewtune.report.runs import collect_runs
from fewtune.report.summary import summarize


def cell_texts(root):
    table = summarize(collect_runs([root]))
    return {row.method: row.cells["sst2"].text(table.seeds["sst2"]) for row in table.rows}


def test_untrained_zero_shot_needs_one_seed_but_a_trained_method_needs_all(tmp_path):
    for seed, acc in ((13, 0.6), (21, 0.8)):
        fake_run(tmp_path, "sst2", "finetune", seed, acc)
    fake_run(tmp_path, "sst2", "zeroshot", 13, 0.5)
    fake_run(tmp_path, "sst2", "prompt", 13, 0.9)
    texts = cell_texts(tmp_path)
    assert texts == {"finetune": "70.0 (10.0)", "zeroshot": "50.0", "prompt": "90.0 [1/2 seeds]"}


def test_a_method_that_samples_demonstrations_is_not_seed_free(tmp_path):
    fake_run(tmp_path, "sst2", "finetune", 13, 0.6)
    fake_run(tmp_path, "sst2", "finetune", 21, 0.8)
    icl = fake_run(tmp_path, "sst2", "zeroshot", 13, 0.55)
    config = icl / ".hydra" / "config.yaml"
    config.write_text(
        config.read_text().replace("train: false", "train: false\n  demonstrations: {total: 4}")
    )
    assert cell_texts(tmp_path)["zeroshot"] == "55.0 [1/2 seeds]"


def test_calibrated_runs_are_a_row_of_their_own(tmp_path):
    # Calibrated zero-shot (seed 13) must not be averaged into the uncalibrated seeds.
    fake_run(tmp_path, "sst2", "finetune", 13, 0.6)
    fake_run(tmp_path, "sst2", "finetune", 21, 0.8)
    for seed in (13, 21):
        fake_run(tmp_path / "plain", "sst2", "zeroshot", seed, 0.5)
    calibrated = fake_run(tmp_path / "calibrated", "sst2", "zeroshot", 13, 0.67)
    config = calibrated / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("train: false", "train: false\n  calibrate: true"))
    table = summarize(collect_runs([tmp_path]))
    titles = {row.method: row.title for row in table.rows}
    assert titles["zeroshot+calibrated"] == "Zero-shot prompt (calibrated)"
    assert cell_texts(tmp_path)["zeroshot"] == "50.0 (0.0)"
    assert cell_texts(tmp_path)["zeroshot+calibrated"] == "67.0"
