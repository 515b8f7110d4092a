"""The costs table: what each method + peft trains, stores and costs, from the runs' metrics.json."""

import json

from omegaconf import OmegaConf

from fewtune.table import main


def peft_run(
    root,
    name,
    peft,
    seed,
    test,
    dev,
    step_time,
    trainable=1_000,
    stored=4_096,
    gpu_mb=None,
    cpu_s=60.0,
):
    folder = root / name
    (folder / ".hydra").mkdir(parents=True)
    cfg = {
        "task": {"name": "sst2", "title": "SST-2", "metric": "acc"},
        "method": {"name": "prompt", "title": "Prompt-based FT"},
        "peft": {"name": peft, "title": {"lora": "LoRA", "none": "full"}[peft]},
        "model": {"name": "smollm2-135m"},
        "k": 16,
        "seed": seed,
    }
    OmegaConf.save(OmegaConf.create(cfg), folder / ".hydra" / "config.yaml")
    metrics = {
        "test": {"acc": test}, "best_dev": dev, "trainable_params": trainable, "trainable_share": trainable / 1e6,
        "task_storage_bytes": stored, "step_time_s": step_time, "peak_rss_mb": 900.0,
        "peak_gpu_mb": gpu_mb, "cpu_time_s": cpu_s,
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_costs_table_per_method_and_peft(tmp_path, capsys):
    root = tmp_path / "grid"
    peft_run(root, "0", "none", 13, 0.80, 0.7, 1.0, trainable=1_000_000, stored=4_000_000)
    peft_run(
        root, "1", "none", 21, 0.90, 0.7, 2.0, trainable=1_000_000, stored=4_000_000, cpu_s=80.0
    )
    peft_run(root, "2", "lora", 13, 0.70, 0.7, 0.5)
    peft_run(root, "3", "lora", 21, 0.60, 0.7, 0.7)
    assert main([str(root), "--costs", "--out", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "costs.md").read_text().splitlines()
    assert lines[0] == (
        "| Task | Method | Model | Trainable params | Share | Stored per task | Step time (s) | CPU time per seed (s) "
        "| Peak RSS (MB) | Test acc |"
    )
    assert (
        lines[2]
        == "| SST-2 | Prompt-based FT | smollm2-135m | 1.00M | 100% | 4.0 MB | 1.50 | 70 | 900 | 85.0 (5.0) |"
    )
    assert (
        lines[3]
        == "| SST-2 | Prompt-based FT + LoRA | smollm2-135m | 1.0k | 0.1% | 4.1 kB | 0.60 | 60 | 900 | 65.0 (5.0) |"
    )
    assert "costs.md" in capsys.readouterr().out


def test_costs_table_shows_gpu_memory_only_for_gpu_runs(tmp_path):
    root = tmp_path / "grid"
    peft_run(root, "0", "lora", 13, 0.70, 0.7, 0.5, gpu_mb=3000.0)
    peft_run(root, "1", "lora", 21, 0.60, 0.7, 0.7, gpu_mb=1000.0)
    assert main([str(root), "--costs", "--out", str(tmp_path / "out")]) == 0
    lines = (tmp_path / "out" / "costs.md").read_text().splitlines()
    assert lines[0].endswith("| Peak RSS (MB) | Peak GPU (MB) | Test acc |")
    assert lines[2].endswith("| 0.60 | 60 | 900 | 2000 | 65.0 (5.0) |")
