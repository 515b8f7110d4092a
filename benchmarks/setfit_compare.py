"""method=setfit beside the setfit library, seed by seed: test accuracy and CPU time.

    python benchmarks/setfit_compare.py results/setfit-cpu benchmarks/setfit-library-cpu.jsonl

Reads every metrics.json of method=setfit-logistic (or --method) runs of minilm-l6 (or --model)
without peft under the first folder and the JSON lines that benchmarks/setfit_reference.py
wrote, and prints a Markdown table per task: each seed's test accuracy and CPU seconds for
both, then the mean (population std) over seeds, as the project's tables report.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def mean_std(values: list[float]) -> str:
    return f"{100 * statistics.fmean(values):.1f} ({100 * statistics.pstdev(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="a folder of fewtune runs (searched recursively)")
    parser.add_argument("library", type=Path, help="setfit_reference.py's JSON lines")
    parser.add_argument("--method", default="setfit-logistic")
    parser.add_argument("--model", default="minilm-l6", help="the library runs all-MiniLM-L6-v2")
    parser.add_argument("--head", default="logistic", help="the library's head in the JSON lines")
    args = parser.parse_args()
    ours: dict[str, dict[int, dict]] = defaultdict(dict)
    for path in sorted(args.runs.rglob("metrics.json")):
        metrics = json.loads(path.read_text())
        wanted = (args.method, args.model, "none")
        if (metrics.get("method"), metrics.get("model"), metrics.get("peft")) == wanted:
            ours[metrics["task"]][metrics["seed"]] = metrics
    library: dict[str, dict[int, dict]] = defaultdict(dict)
    for line in args.library.read_text().splitlines():
        row = json.loads(line)
        if row["head"] == args.head:
            library[row["task"]][row["seed"]] = row
    for task in sorted(set(ours) & set(library)):
        seeds = sorted(set(ours[task]) & set(library[task]))
        print(
            f"\n{task}: fewtune method={args.method} vs setfit {library[task][seeds[0]]['setfit_version']}\n"
        )
        print("| seed | fewtune acc | fewtune CPU s | library acc | library CPU s |")
        print("|---|---|---|---|---|")
        for seed in seeds:
            a, b = ours[task][seed], library[task][seed]
            print(f"| {seed} | {100 * a['test']['acc']:.1f} | {a['cpu_time_s']:.0f} | {100 * b['test_acc']:.1f} | "
                  f"{b['cpu_time_s']:.0f} |")  # fmt: skip
        fa = [ours[task][s]["test"]["acc"] for s in seeds]
        la = [library[task][s]["test_acc"] for s in seeds]
        fc = statistics.fmean(ours[task][s]["cpu_time_s"] for s in seeds)
        lc = statistics.fmean(library[task][s]["cpu_time_s"] for s in seeds)
        print(f"| mean (std) | {mean_std(fa)} | {fc:.0f} | {mean_std(la)} | {lc:.0f} |")


if __name__ == "__main__":
    main()
