"""Run folders written by hand, as a run leaves them (config + metrics.json): no training."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

TASKS = {"sst2": ("SST-2", "acc"), "mr": ("MR", "acc"), "cola": ("CoLA", "mcc")}
METHODS = {"zeroshot": "Zero-shot prompt", "finetune": "Fine-tuning", "prompt": "Prompt-based FT"}
PEFTS = {"none": "none", "lora": "LoRA", "bitfit": "BitFit"}


def fake_run(
    root: Path,
    task: str,
    method: str,
    seed: int,
    test: float,
    k: int = 16,
    peft: str = "none",
    trainable: int = 1000,
    dev: float = 0.5,
) -> Path:
    folder = root / f"{task}-{method}-{peft}-k{k}-seed{seed}"
    (folder / ".hydra").mkdir(parents=True)
    title, metric = TASKS[task]
    cfg = {
        "task": {"name": task, "title": title, "metric": metric},
        "method": {"name": method, "title": METHODS[method], "train": method != "zeroshot"},
        "peft": {"name": peft, "title": PEFTS[peft]},
        "model": {"name": "tiny"},
        "k": k,
        "seed": seed,
    }
    OmegaConf.save(OmegaConf.create(cfg), folder / ".hydra" / "config.yaml")
    metrics = {"test": {metric: test}, "best_dev": dev, "trainable_params": trainable}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def fake_grid(root: Path) -> Path:
    """SST-2 and MR; zero-shot, fine-tuning and prompt-based FT at K=4 and 16, prompt + LoRA at
    K=16; seeds 13 and 21. Test accuracy: 0.6 (seed 13) and 0.8 (seed 21), plus 0.1 for K=16."""
    for task in ("sst2", "mr"):
        for seed, base in ((13, 0.6), (21, 0.8)):
            for k in (4, 16):
                bonus = 0.1 if k == 16 else 0.0
                fake_run(root, task, "zeroshot", seed, 0.5, k=k)
                fake_run(
                    root, task, "finetune", seed, base + bonus - 0.1, k=k, trainable=135_000_000
                )
                fake_run(root, task, "prompt", seed, base + bonus, k=k, trainable=135_000_000)
            fake_run(root, task, "prompt", seed, base, peft="lora", trainable=460_000)
    return root
