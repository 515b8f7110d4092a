"""Run the benchmark: ``python -m fewtune.bench [--out FILE] [--cases ...] [--proxy ...]``.

Each case: fewtune and the tuned plain loop in one process (alternating rounds), the naive
baseline in its own; then the CPU proxy (tiny backbones) of a GPU's fixed costs. Writes the
figures, per-step and per-batch times included, to benchmarks/latest.json and prints the table.
"""

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
from fewtune.jobs.atomic import write_json_atomic
from fewtune.run.hardware import bf16_native, cpu_description

CASES = [("smollm2-135m", "prompt"), ("smollm2-135m", "finetune"), ("minilm-l6", "finetune")]
# the tiny stand-ins of the same three cases (bench/tiny.py)
PROXY_CASES = ["tiny-llama/prompt", "tiny-llama/finetune", "tiny-bert/finetune"]


def run_worker(spec: dict) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "fewtune.bench.worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            return json.loads(line.removeprefix("BENCH-RESULT "))
    raise RuntimeError(
        f"benchmark worker failed: {spec['kind']} {spec['impl']}\n{proc.stderr[-3000:]}"
    )


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
        subprocess.run(
            command, capture_output=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
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


def measure_case(model: str, method: str, common: list[str], args, device: str) -> dict:
    # experiment=cpu: the protocol of the README's results (bf16-mixed); the trainer's accelerator
    # is auto, so the start-up command below trains on the GPU where there is one.
    overrides = [f"model={model}", f"method={method}", "experiment=cpu", *common]
    spec = {
        "model": model, "method": method, "overrides": overrides, "steps": args.steps, "warmup": args.warmup,
        "limit": args.limit, "device": device, "rounds": args.rounds,
    }  # fmt: skip
    case = two_sided_case(spec, naive=True)
    print(f"  {model} {method}: start-up", flush=True)
    case["startup"] = {
        "fewtune_s": fewtune_startup([*overrides, "trainer.max_steps=1"]),
        "baseline_s": baseline_startup(spec),
    }
    return case


def two_sided_case(spec: dict, naive: bool) -> dict:
    """fewtune and the tuned loop in one process (each kind), and the naive baseline in its own."""
    case = {}
    for kind in ("eval", "train"):
        name = f"{spec['model']} {spec['method']}"
        print(f"  {name}: {kind}, fewtune and tuned", flush=True)
        pair = {
            **spec,
            "kind": f"pair_{kind}",
            "impl": "pair",
            "steps": spec["steps"] + spec["warmup"],
        }
        case[f"{kind}_pair"] = run_worker(pair)
        if naive:
            print(f"  {name}: {kind}, naive", flush=True)
            case[f"{kind}_baseline"] = run_worker({**spec, "kind": kind, "impl": "baseline"})
    if naive:
        ours, base = case["eval_pair"], case["eval_baseline"]
        case["agreement"] = agreement(ours, base)
        case["accuracy"] = {"fewtune": accuracy(ours), "baseline": accuracy(base)}
        del base["logits"], base["labels"]  # keep the JSON small: predictions were compared above
    del case["eval_pair"]["logits"], case["eval_pair"]["labels"]
    return case


def proxy_cases(args, device: str) -> dict:
    """The tiny backbones' fewtune / tuned ratios: the host's cost of a step and an eval batch."""
    from fewtune.bench.cases import compose
    from fewtune.bench.tiny import TINY, tiny_overrides

    cache_dir = compose(["logger=none"]).paths.cache_dir
    out = {}
    for name in args.proxy:
        model, method = name.split("/")
        overrides = [
            *tiny_overrides(model, cache_dir),
            f"method={method}",
            "experiment=cpu",
            *args.overrides,
        ]
        spec = {
            "model": model, "method": method, "overrides": overrides, "steps": args.proxy_steps, "warmup": 0,
            "limit": None, "device": device, "rounds": args.proxy_rounds, "stands_for": TINY[model],
        }  # fmt: skip
        out[name] = two_sided_case(spec, naive=False)
    return out


def md_row(cells: list[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def steady(result: dict, side: str) -> float:
    return (
        result[side]["steady_median_s"]
        if side in result
        else result["step_times" if "step_times" in result else "batches"]["steady_median_s"]
    )


def render(results: dict) -> str:
    peak = results["peak_gflops"]
    ours_peak = "bfloat16" if "bfloat16" in peak else "float32"  # the precision fewtune ran in
    bf16 = (
        f"{peak['bfloat16']:.0f} GFLOP/s bfloat16"
        if ours_peak == "bfloat16"
        else "bfloat16 not measured (emulated here)"
    )
    lines = [
        f"Machine: {results['machine']}; matmul peak {peak['float32']:.0f} GFLOP/s float32, {bf16}",
        "",
        "| model | method | figure | fewtune | tuned | naive | fewtune vs naive | fewtune / tuned |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, case in results["cases"].items():
        model, method = name.split("/")
        ep, eb, tp, tb = (
            case["eval_pair"],
            case["eval_baseline"],
            case["train_pair"],
            case["train_baseline"],
        )
        examples = ep["examples"]
        e_f, e_t, e_n = steady(ep, "fewtune"), steady(ep, "tuned"), eb["batches"]["steady_median_s"]
        t_f, t_t, t_n = (
            steady(tp, "fewtune"),
            steady(tp, "tuned"),
            tb["step_times"]["steady_median_s"],
        )
        eval_rate = {
            side: examples / sum(ep[side]["rounds"][0]["per_item_s"])
            for side in ("fewtune", "tuned")
        }
        rows = [
            # label, fewtune, tuned, naive, speed-up over naive (higher is better), time over tuned
            ("eval examples/s (sum of batches)", eval_rate["fewtune"], eval_rate["tuned"], eb["examples_per_s"],
             ratio(eval_rate["fewtune"], eb["examples_per_s"]), ratio(eval_rate["tuned"], eval_rate["fewtune"])),
            ("eval batch, median (ms)", 1000 * e_f, 1000 * e_t, 1000 * e_n, ratio(e_n, e_f), ratio(e_f, e_t)),
            ("eval first batch (ms)", 1000 * ep["fewtune"]["first_s"][0], 1000 * ep["tuned"]["first_s"][0],
             1000 * eb["batches"]["first_s"], "", ""),
            ("eval distinct shapes", ep["fewtune"]["distinct_shapes"], ep["tuned"]["distinct_shapes"],
             eb["batches"]["distinct_shapes"], "", ""),
            ("train step, median (ms)", 1000 * t_f, 1000 * t_t, 1000 * t_n, ratio(t_n, t_f), ratio(t_f, t_t)),
            ("train first step (ms)", 1000 * tp["fewtune"]["first_s"][0], 1000 * tp["tuned"]["first_s"][0],
             1000 * tb["step_times"]["first_s"], "", ""),
            ("train distinct shapes", tp["fewtune"]["distinct_shapes"], tp["tuned"]["distinct_shapes"],
             tb["step_times"]["distinct_shapes"], "", ""),
            ("peak RSS eval (MB)", ep["peak_rss_mb"], None, eb["peak_rss_mb"], ratio(eb["peak_rss_mb"], ep["peak_rss_mb"]), ""),
            ("peak RSS train (MB)", tp["peak_rss_mb"], None, tb["peak_rss_mb"], ratio(tb["peak_rss_mb"], tp["peak_rss_mb"]), ""),
            *[
                (f"peak GPU memory {kind} (MB)", ours["peak_gpu_mb"], None, base["peak_gpu_mb"],
                 ratio(base["peak_gpu_mb"], ours["peak_gpu_mb"]), "")
                for kind, ours, base in (("eval", ep, eb), ("train", tp, tb))
                if ours.get("peak_gpu_mb") and base.get("peak_gpu_mb")
            ],
            ("start to first step (s)", case["startup"]["fewtune_s"], None, case["startup"]["baseline_s"],
             ratio(case["startup"]["baseline_s"], case["startup"]["fewtune_s"]), ""),
        ]  # fmt: skip
        for label, ours, tuned, naive, vs_naive, vs_tuned in rows:
            cells = [
                "" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
                for v in (ours, tuned, naive)
            ]
            lines.append(md_row([model, method, label, *cells, vs_naive, vs_tuned]))
        mfu = eval_rate["fewtune"] * ep["tokens"] / examples * ep["flops_per_token"] / 1e9
        base_mfu = eb["tokens_per_s"] * eb["flops_per_token"] / 1e9
        lines.append(
            f"| {model} | {method} | eval MFU | {100 * mfu / peak[ours_peak]:.0f}% ({ours_peak} peak) | | "
            f"{100 * base_mfu / peak['float32']:.0f}% (fp32 peak) | | |"
        )
        agree = case["agreement"]
        lines.append(
            f"| {model} | {method} | test accuracy | {100 * case['accuracy']['fewtune']:.2f} | | "
            f"{100 * case['accuracy']['baseline']:.2f} | {agree['disagree']} of {agree['of']} predictions differ, "
            f"{agree['disagree_beyond_bf16_ties']} beyond bf16 ties | |"
        )
    for model, load in results["load"].items():
        lines.append(
            f"| {model} | | load, cold (s) | {load['cold_s']:.2f} | | {load['baseline_s']:.2f} | {ratio(load['baseline_s'], load['cold_s'])} | |"
        )
        lines.append(
            f"| {model} | | load, cached (s) | {load['cached_s']:.2f} | | {load['baseline_s']:.2f} | {ratio(load['baseline_s'], load['cached_s'])} | |"
        )
    lines += [
        "",
        (
            "fewtune vs naive: fewtune's speed over the naive loop's (baseline / fewtune for times and memory; "
            "higher is better). fewtune / tuned: fewtune's time over the tuned plain loop's (1.00x: Lightning and "
            "fewtune's machinery cost nothing). Medians of the steps (batches) after each run's first, pooled over "
            f"{results.get('rounds', 1)} alternating rounds."
        ),
    ]
    if results.get("proxy"):
        lines += ["", render_proxy(results["proxy"], results.get("proxy_limit", PROXY_LIMIT))]
    return "\n".join(lines) + "\n"


PROXY_LIMIT = 1.25  # fewtune's step and eval batch at most this times the tuned loop's


def render_proxy(proxy: dict, limit: float = PROXY_LIMIT) -> str:
    lines = [
        (
            "CPU proxy for a GPU's fixed costs: tiny backbones (2 layers, hidden 64, the real tokenizers); "
            f"fewtune must stay within {limit:.2f}x of the tuned loop."
        ),
        "",
        "| proxy (stands for) | method | figure | fewtune (ms) | tuned (ms) | fewtune - tuned (ms) | fewtune / tuned | within |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, case in proxy.items():
        model, method = name.split("/")
        for kind, label in (("train", "train step, median"), ("eval", "eval batch, median")):
            pair = case[f"{kind}_pair"]
            ours, tuned = pair["fewtune"]["steady_median_s"], pair["tuned"]["steady_median_s"]
            r = pair["steady_ratio"]
            verdict = "yes" if r is not None and r <= limit else "NO"
            from fewtune.bench.tiny import TINY

            lines.append(
                f"| {model} ({TINY.get(model, '')}) | {method} | {label} | {ms(ours)} | {ms(tuned)} | "
                f"{ms(ours - tuned)} | {r:.2f}x | {verdict} |"
            )
        for kind in ("train", "eval"):
            pair = case[f"{kind}_pair"]
            lines.append(
                f"| {model} | {method} | {kind} distinct shapes, first (ms) | {pair['fewtune']['distinct_shapes']}, "
                f"{ms(pair['fewtune']['first_s'][0])} | {pair['tuned']['distinct_shapes']}, {ms(pair['tuned']['first_s'][0])} | | | |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fewtune.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "latest.json")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument(
        "--limit", type=int, default=None, help="evaluate only this many test examples"
    )
    parser.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides for every case")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu",
        help="where evaluation and training run (the GPU when there is one)",
    )  # fmt: skip
    parser.add_argument(
        "--cases", nargs="*", default=[f"{m}/{me}" for m, me in CASES], help="model/method pairs"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating rounds of fewtune and the tuned loop"
    )
    parser.add_argument(
        "--proxy",
        nargs="*",
        default=list(PROXY_CASES),
        help="tiny model/method pairs of the CPU proxy (none: skip)",
    )
    parser.add_argument(
        "--proxy-steps", type=int, default=40, help="training steps a side a round, tiny models"
    )
    parser.add_argument(
        "--proxy-rounds", type=int, default=4, help="alternating rounds, tiny models"
    )
    args = parser.parse_args(argv)

    print("matmul peak", flush=True)
    dtypes = (
        ("float32", "bfloat16")
        if bf16_native("gpu" if args.device == "cuda" else "cpu")
        else ("float32",)
    )
    machine = f"{platform.machine()} ({cpu_description()}), {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if args.device == "cuda":
        machine = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda}); host {machine}"
    results = {
        "machine": machine,
        "device": args.device,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python -m fewtune.bench "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        # bf16 only where the device has bf16 kernels: elsewhere fewtune runs float32 (and an
        # emulated bf16 product of this size would take minutes)
        "peak_gflops": {
            dtype: matmul_peak_gflops(getattr(torch, dtype), args.device) for dtype in dtypes
        },
        "rounds": args.rounds,
        "cases": {},
        "proxy": {},
        "proxy_limit": PROXY_LIMIT,
        "load": {},
    }
    if args.proxy:
        print("CPU proxy (tiny backbones)", flush=True)
        results["proxy"] = proxy_cases(args, args.device)
        write_json_atomic(args.out, {**results, "complete": False})
    for name in args.cases:
        model, method = name.split("/")
        results["cases"][name] = measure_case(model, method, args.overrides, args, args.device)
        write_json_atomic(
            args.out, {**results, "complete": False}
        )  # a killed run keeps the finished cases
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
