"""Run the benchmark: ``python -m fewtune.bench [--quick] [--out FILE]``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fewtune.bench.peak import matmul_peak_gflops
from fewtune.config import PROJECT_ROOT
from fewtune.run.hardware import bf16_native, cpu_description
from fewtune.jobs.atomic import write_json_atomic

CASES = [("smollm2-135m", "prompt"), ("smollm2-135m", "finetune"), ("minilm-l6", "finetune")]


def run_worker(spec: dict) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "fewtune.bench.worker", json.dumps(spec)], capture_output=True, text=True, env=env
    )
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line.removeprefix("BENCH-RESULT "))
    raise RuntimeError(f"benchmark worker failed: {spec['kind']} {spec['impl']}\n{proc.stderr[-3000:]}")


def fewtune_startup(overrides: list[str]) -> float:
    """Seconds from launching the real training command to its first training step."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = Path(tmp) / "first-step"
        command = [
            sys.executable, "-m", "fewtune.train", *overrides,
            "logger=none", "~callbacks.model_checkpoint", "trainer.limit_test_batches=1",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp}/run",
            "+callbacks.first_step._target_=fewtune.bench.timing.FirstStepMarker",
            f"+callbacks.first_step.path={marker}",
        ]  # fmt: skip
        launched = time.time()
        subprocess.run(command, capture_output=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        return float(marker.read_text()) - launched


def baseline_startup(spec: dict) -> float:
    launched = time.time()
    return run_worker({**spec, "kind": "startup", "impl": "baseline"})["first_step_at"] - launched


def agreement(ours: dict, base: dict) -> dict:
    """Predictions of both; a disagreement counts as a tie when the baseline's margin between the
    two top labels is within bfloat16 rounding (2^-7 relative to the logits)."""
    a, b = torch.tensor(ours["logits"]), torch.tensor(base["logits"])
    differ = (a.argmax(-1) != b.argmax(-1)).nonzero().flatten()
    top2 = b.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]) / top2.abs().max(-1).values.clamp_min(1e-6)
    beyond_ties = int((margin[differ] > 2**-7).sum())
    return {"disagree": len(differ), "disagree_beyond_bf16_ties": beyond_ties, "of": len(a)}


def accuracy(result: dict) -> float:
    predictions = torch.tensor(result["logits"]).argmax(-1)
    return float((predictions == torch.tensor(result["labels"])).float().mean())


def measure_case(model: str, method: str, common: list[str], steps: int, warmup: int, limit, device: str) -> dict:
    # experiment=cpu: the protocol of the README's results (bf16-mixed); the trainer's accelerator
    # is auto, so the start-up command below trains on the GPU where there is one.
    overrides = [f"model={model}", f"method={method}", "experiment=cpu", *common]
    spec = {
        "model": model, "method": method, "overrides": overrides, "steps": steps, "warmup": warmup, "limit": limit,
        "device": device,
    }  # fmt: skip
    case = {}
    for kind in ("eval", "train"):
        for impl in ("fewtune", "baseline"):
            print(f"  {model} {method}: {kind} {impl}", flush=True)
            case[f"{kind}_{impl}"] = run_worker({**spec, "kind": kind, "impl": impl})
    case["agreement"] = agreement(case["eval_fewtune"], case["eval_baseline"])
    case["accuracy"] = {impl: accuracy(case[f"eval_{impl}"]) for impl in ("fewtune", "baseline")}
    print(f"  {model} {method}: start-up", flush=True)
    case["startup"] = {
        "fewtune_s": fewtune_startup([*overrides, "trainer.max_steps=1"]),
        "baseline_s": baseline_startup(spec),
    }
    for impl in ("fewtune", "baseline"):  # keep the JSON small: predictions were compared above
        del case[f"eval_{impl}"]["logits"]
        del case[f"eval_{impl}"]["labels"]
    return case


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def render(results: dict) -> str:
    peak = results["peak_gflops"]
    ours_peak = "bfloat16" if "bfloat16" in peak else "float32"  # the precision fewtune ran in
    bf16 = f"{peak['bfloat16']:.0f} GFLOP/s bfloat16" if ours_peak == "bfloat16" else "bfloat16 not measured (emulated here)"
    lines = [
        f"Machine: {results['machine']}; matmul peak {peak['float32']:.0f} GFLOP/s float32, {bf16}",
        "",
        "| model | method | figure | fewtune | baseline | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in results["cases"].items():
        model, method = name.split("/")
        ef, eb, tf, tb = case["eval_fewtune"], case["eval_baseline"], case["train_fewtune"], case["train_baseline"]
        rows = [
            ("eval examples/s", ef["examples_per_s"], eb["examples_per_s"], False),
            ("eval tokens/s", ef["tokens_per_s"], eb["tokens_per_s"], False),
            ("train steps/s (batch 8)", tf["steps_per_s"], tb["steps_per_s"], False),
            ("train tokens/s", tf["tokens_per_s"], tb["tokens_per_s"], False),
            ("peak RSS eval (MB)", ef["peak_rss_mb"], eb["peak_rss_mb"], True),
            ("peak RSS train (MB)", tf["peak_rss_mb"], tb["peak_rss_mb"], True),
            *[
                (f"peak GPU memory {kind} (MB)", ours["peak_gpu_mb"], base["peak_gpu_mb"], True)
                for kind, ours, base in (("eval", ef, eb), ("train", tf, tb))
                if ours.get("peak_gpu_mb") and base.get("peak_gpu_mb")
            ],
            ("start to first step (s)", case["startup"]["fewtune_s"], case["startup"]["baseline_s"], True),
        ]
        for label, ours, base, lower_is_better in rows:
            r = ratio(base, ours) if lower_is_better else ratio(ours, base)
            lines.append(f"| {model} | {method} | {label} | {ours:.2f} | {base:.2f} | {r} |")
        mfu = ef["tokens_per_s"] * ef["flops_per_token"] / 1e9
        lines.append(
            f"| {model} | {method} | eval MFU ({ours_peak} peak) | {100 * mfu / peak[ours_peak]:.0f}% | "
            f"{100 * eb['tokens_per_s'] * eb['flops_per_token'] / 1e9 / peak['float32']:.0f}% (fp32 peak) | |"
        )
        agree = case["agreement"]
        lines.append(
            f"| {model} | {method} | test accuracy | {100 * case['accuracy']['fewtune']:.2f} | "
            f"{100 * case['accuracy']['baseline']:.2f} | {agree['disagree']} of {agree['of']} predictions differ, "
            f"{agree['disagree_beyond_bf16_ties']} beyond bf16 ties |"
        )
    for model, load in results["load"].items():
        lines.append(f"| {model} | | load, cold (s) | {load['cold_s']:.2f} | {load['baseline_s']:.2f} | {ratio(load['baseline_s'], load['cold_s'])} |")
        lines.append(f"| {model} | | load, cached (s) | {load['cached_s']:.2f} | {load['baseline_s']:.2f} | {ratio(load['baseline_s'], load['cached_s'])} |")
    lines.append("")
    lines.append("ratio: fewtune / baseline for rates, baseline / fewtune for times and memory (higher is better).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fewtune.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "latest.json")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only this many test examples")
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every case")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
        help="where evaluation and training run (the GPU when there is one)",
    )  # fmt: skip
    parser.add_argument("--cases", nargs="*", default=[f"{m}/{me}" for m, me in CASES], help="model/method pairs")
    args = parser.parse_args(argv)

    print("matmul peak", flush=True)
    dtypes = ("float32", "bfloat16") if bf16_native("gpu" if args.device == "cuda" else "cpu") else ("float32",)
    machine = f"{platform.machine()} ({cpu_description()}), {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.device == "cuda":
        machine = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); host {machine}"
    results = {
        "machine": machine,
        "device": args.device,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python -m fewtune.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        # bf16 only where the device has bf16 kernels: elsewhere fewtune runs float32 (and an
        # emulated bf16 product of this size would take minutes)
        "peak_gflops": {dtype: matmul_peak_gflops(getattr(torch, dtype), args.device) for dtype in dtypes},
        "cases": {},
        "load": {},
    }
    for name in args.cases:
        model, method = name.split("/")
        results["cases"][name] = measure_case(model, method, args.overrides, args.steps, args.warmup, args.limit, args.device)
        write_json_atomic(args.out, {**results, "complete": False})  # a killed run keeps the finished cases
    for model in sorted({name.split("/")[0] for name in args.cases}):
        if model in ("smollm2-135m", "minilm-l6"):
            print(f"  {model}: load", flush=True)
            results["load"][model] = run_worker({"kind": "load", "impl": "both", "model": model})
    results["complete"] = True
    results["table"] = render(results)
    write_json_atomic(args.out, results)
    print(results["table"])
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
