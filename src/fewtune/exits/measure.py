"""Early exit's trade-off, measured: test metric against speed-up, for trained runs with exits.

    python -m fewtune.exits <run or multirun dir> [more] [--patience 1 2 3 4 6] [--entropy 0.1 0.2 0.4]
                            [--repeats 3] [--time-batches N] [--out DIR] [--set key=value ...]

For each run (a folder with .hydra/config.yaml and exit != none; a multirun folder stands for
the runs below it) the run's weights are loaded as ``python -m fewtune.evaluate`` loads them, the
test set is batched once, and in the same process, on the same batches and with the run's
precision, it times:

- ``full``: the model's own forward pass through every layer (the final head; no exit code);
- ``layerwise``: every layer through the layer-by-layer path (what exiting adds, without exits);
- each rule and threshold: ``patience`` (PABEE) and ``confidence`` (DeeBERT, entropy in nats).

Each setting is timed paired with ``full``: every batch through both back to back, the fastest
of ``--repeats`` tries each, so a change in load on a shared CPU hits both alike. Per setting it
reports the test metric, the mean number of layers run per example (``exit_layers``), the
measured speed-up (full time / this time) and the speed-up that the layers alone would give
(layers / exit_layers); and each exit layer's own metric (every example exits there).
With ``--time-batches N`` only N batches, spread over the length-sorted test batches, are timed;
the metric and layers run still cover every example, replayed from the logits of every exit
(``exits/rules.replay``: a rule looks only at an example's own exits), and
``replay_agreement`` says how many of the timed examples left at the replayed layer.
Writes ``<run>/exits.json`` (atomically) per run; with several runs, the mean (std) over them
in ``<out>/exits_summary.json``; prints the table and draws ``exits.png`` (metric against
measured speed-up, one line per rule) into ``--out`` (default: the run, or the runs' common folder).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import write_json_atomic
from fewtune.run.results import METRICS_FILE

log = logging.getLogger("fewtune")
RESULT_FILE = "exits.json"
SUMMARY_FILE = "exits_summary.json"
PLOT_FILE = "exits.png"
DEFAULT_PATIENCE = [1, 2, 3, 4, 6]
DEFAULT_ENTROPY = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def find_runs(paths: list[Path]) -> list[Path]:
    """The run folders: each path itself if it is a run, else the runs below it."""
    runs = []
    for path in paths:
        if (path / ".hydra" / "config.yaml").is_file():
            runs.append(path)
            continue
        found = (
            sorted(p.parent.parent for p in path.glob("**/.hydra/config.yaml"))
            if path.is_dir()
            else []
        )
        if not found:
            raise FewtuneError(
                f"{path} holds no run (no .hydra/config.yaml): give a run folder or a multirun folder"
            )
        finished = [run for run in found if (run / METRICS_FILE).is_file()]
        for run in sorted(set(found) - set(finished)):
            log.warning("skipped %s: no metrics.json (failed, killed or still running)", run)
        runs += finished
    return runs


def _setup(run_dir: Path, overrides: list[str]):
    """(config, module on its device, test batches on it, autocast context factory)."""
    import pytorch_lightning as pl
    import torch

    from fewtune.exits.rules import from_run
    from fewtune.run.build import build
    from fewtune.run.reload import load_run_weights, run_config

    cfg = run_config(run_dir, overrides)
    if from_run(cfg, regression=False) is None:
        raise FewtuneError(
            f"{run_dir} was trained with exit=none: it has no exits to leave by; train it with exit=all or exit=every2"
        )
    if not (run_dir / METRICS_FILE).is_file():
        raise FewtuneError(
            f"{run_dir} has no metrics.json: the run did not finish, so there is nothing to measure"
        )
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    load_run_weights(module, cfg, run_dir)
    datamodule.setup("test")
    device = torch.device(
        "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator != "cpu" else "cpu"
    )
    module.to(device).eval()
    batches = [{k: v.to(device) for k, v in b.items()} for b in datamodule.test_dataloader()]
    precision = str(cfg.trainer.get("precision", "32-true"))
    dtype = (
        torch.bfloat16
        if precision.startswith("bf16")
        else torch.float16
        if precision.startswith("16")
        else None
    )

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    return cfg, module, batches, autocast, device


def _paired(fn, baseline, batches, autocast, device, repeats: int):
    """(seconds of ``fn``, seconds of ``baseline``, ``fn``'s outputs). Each batch goes through both
    back to back, the fastest of ``repeats`` tries each, so that a change in the machine's load
    (a shared CPU) hits both alike."""
    import torch

    def clock(call, batch):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = call(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, out

    fn_s = base_s = 0.0
    outs = []
    with torch.inference_mode(), autocast():
        for batch in batches:
            tries = [(clock(baseline, batch)[0], clock(fn, batch)) for _ in range(repeats)]
            base_s += min(t for t, _ in tries)
            fn_s += min(t for _, (t, _) in tries)
            outs.append(tries[-1][1][1])
    return fn_s, base_s, outs


def _metrics(cfg, module, logits: list, batches: list) -> dict[str, float]:
    import torch

    from fewtune.run.metrics import build_metrics, to_floats

    metrics = build_metrics(cfg.task.metric, module.num_labels, prefix="")
    metrics.update(
        torch.cat([x.float().cpu() for x in logits]),
        torch.cat([b["labels"].cpu() for b in batches]),
    )
    return to_floats(metrics.compute())


def timed_subset(num_batches: int, wanted: int | None) -> list[int]:
    """Indices of ``wanted`` batches spread evenly over the (length-sorted) batches; all by default."""
    if wanted is None or wanted >= num_batches:
        return list(range(num_batches))
    return sorted({round(i * (num_batches - 1) / max(wanted - 1, 1)) for i in range(wanted)})


def measure_run(
    run_dir: Path,
    patience: list[int],
    entropy: list[float],
    repeats: int = 1,
    overrides: list[str] = (),
    time_batches: int | None = None,
) -> dict:
    """The measurements of one run, as written to <run>/exits.json."""
    import torch

    from fewtune.exits.rules import replay

    cfg, module, batches, autocast, device = _setup(Path(run_dir), list(overrides))
    layers = module.runner.num_layers
    metric = cfg.task.metric
    settings = module.exit_settings
    with torch.inference_mode(), autocast():
        module.full_logits(batches[0])  # warm-up: first-call allocations and kernel choices
        module.all_exit_logits(batches[0])
    with torch.inference_mode(), autocast():
        full_logits = [module.full_logits(b) for b in batches]
        # Every exit's own metric: all examples through all layers, each exit's logits kept.
        per_exit = [module.all_exit_logits(b) for b in batches]
    per_layer = {
        str(layer): _metrics(cfg, module, [p[layer] for p in per_exit], batches)[metric]
        for layer in module.exit_layers
    }

    rows = []
    sweep = (
        [("none", None)]
        + [("patience", v) for v in patience]
        + [("confidence", v) for v in entropy]
    )
    timed = timed_subset(len(batches), time_batches)
    for rule, value in sweep:
        module.exit_settings = settings.with_rule(rule, value)
        seconds, full_s, outs = _paired(
            module.early_exit,
            module.full_logits,
            [batches[i] for i in timed],
            autocast,
            device,
            repeats,
        )
        agreement = None
        if len(timed) < len(batches):
            # The metric over every batch, replayed from the exits' logits; the timed batches
            # ran for real, and the replay must give the same exit layers there.
            replayed = [replay(module.exit_settings, p) for p in per_exit]
            same = sum(
                int((at.cpu() == replayed[i][1].cpu()).sum()) for i, (_, at) in zip(timed, outs)
            )
            agreement = same / sum(len(batches[i]["labels"]) for i in timed)
            outs = replayed
        scores = _metrics(cfg, module, [logits for logits, _ in outs], batches)
        mean_layers = float(torch.cat([at.float().cpu() for _, at in outs]).mean())
        rows.append(
            {
                "rule": "layerwise" if rule == "none" else rule,
                "value": value,
                metric: scores[metric],
                "acc": scores.get("acc"),
                "exit_layers": round(mean_layers, 4),
                "time_s": round(seconds, 4),
                "full_time_s": round(full_s, 4),
                "speedup": round(full_s / seconds, 4),
                "layer_speedup": round(layers / mean_layers, 4),
                "replay_agreement": agreement,
            }
        )
    module.exit_settings = settings
    full_scores = _metrics(cfg, module, full_logits, batches)
    return {
        "run": str(run_dir),
        "task": cfg.task.name,
        "model": cfg.model.name,
        "method": cfg.method.name,
        "peft": cfg.peft.name,
        "seed": cfg.seed,
        "metric": metric,
        "num_layers": layers,
        "exit_layers": module.exit_layers,
        "loss_weights": settings.loss_weights,
        "examples": sum(len(b["labels"]) for b in batches),
        "batches": len(batches),
        "device": str(device),
        "precision": str(cfg.trainer.get("precision")),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "timed_batches": len(timed),
        "full": {metric: full_scores[metric], "acc": full_scores.get("acc")},
        "per_layer": per_layer,
        "settings": rows,
    }


def summarize(results: list[dict]) -> dict:
    """Mean and population std over runs (seeds) of each setting's numbers."""
    groups = {(r["task"], r["model"], r["method"], r["peft"]) for r in results}
    if len(groups) > 1:
        raise FewtuneError(
            f"the runs differ in task, model, method or peft ({sorted(groups)}): measure them apart"
        )
    metric = results[0]["metric"]

    def stats(values: list[float]) -> dict:
        return {
            "mean": statistics.fmean(values),
            "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        }

    keyed: dict[tuple, list[dict]] = {}
    for result in results:
        for row in result["settings"]:
            keyed.setdefault((row["rule"], row["value"]), []).append(row)
    settings = [
        {
            "rule": rule,
            "value": value,
            "runs": len(rows),
            **{
                key: stats([r[key] for r in rows])
                for key in (metric, "exit_layers", "speedup", "layer_speedup")
            },
        }
        for (rule, value), rows in keyed.items()
    ]
    return {
        "task": results[0]["task"],
        "model": results[0]["model"],
        "method": results[0]["method"],
        "peft": results[0]["peft"],
        "metric": metric,
        "runs": [r["run"] for r in results],
        "seeds": [r["seed"] for r in results],
        "num_layers": results[0]["num_layers"],
        "full": {metric: stats([r["full"][metric] for r in results])},
        "settings": settings,
    }


def _cell(s: dict, runs: int, percent: bool = False) -> str:
    scale, digits = (100, 1) if percent else (1, 2)
    text = f"{scale * s['mean']:.{digits}f}"
    return text + f" ({scale * s['std']:.{digits}f})" if runs > 1 else text


def table(summary: dict) -> str:
    """Markdown: one row per setting, mean (std) over the runs."""
    metric = summary["metric"]
    head = f"| rule | threshold | test {metric} (%) | layers run (of {summary['num_layers']}) | measured speed-up | layers speed-up |"
    lines = [head, "|---|---|---|---|---|---|"]
    runs = len(summary["runs"])
    lines.append(
        f"| full model | | {_cell(summary['full'][metric], runs, True)} | {summary['num_layers']} | 1.00 | 1.00 |"
    )
    for s in summary["settings"]:
        threshold = (
            ""
            if s["value"] is None
            else (f"t={s['value']}" if s["rule"] == "patience" else f"H<{s['value']}")
        )
        lines.append(
            f"| {s['rule']} | {threshold} | {_cell(s[metric], runs, True)} | {_cell(s['exit_layers'], runs)} | "
            f"{_cell(s['speedup'], runs)}x | {_cell(s['layer_speedup'], runs)}x |"
        )
    return "\n".join(lines)


def run(
    paths: list[Path],
    patience: list[int],
    entropy: list[float],
    repeats: int = 1,
    out: Path | None = None,
    overrides: list[str] = (),
    time_batches: int | None = None,
) -> dict:
    from fewtune.exits.plots import exits_plot
    from fewtune.exits.rules import ExitSettings

    for value in patience:  # a bad threshold fails before any weights load
        ExitSettings().with_rule("patience", value)
    for value in entropy:
        ExitSettings().with_rule("confidence", value)
    runs = find_runs([Path(p) for p in paths])
    results = []
    for run_dir in runs:
        result = measure_run(run_dir, patience, entropy, repeats, overrides, time_batches)
        write_json_atomic(run_dir / RESULT_FILE, result)
        results.append(result)
    summary = summarize(results)
    if out is None:
        out = runs[0] if len(runs) == 1 else Path(os.path.commonpath([str(r) for r in runs]))
    if len(runs) > 1:
        write_json_atomic(Path(out) / SUMMARY_FILE, summary)
    exits_plot(summary, Path(out) / PLOT_FILE)
    summary["table"] = table(summary)
    summary["out"] = str(out)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fewtune.exits", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, help="run folders (exit != none) or multirun folders"
    )
    parser.add_argument(
        "--patience",
        nargs="*",
        type=int,
        default=None,
        help=f"PABEE patience values (default {DEFAULT_PATIENCE})",
    )
    parser.add_argument(
        "--entropy",
        nargs="*",
        type=float,
        default=None,
        help=f"DeeBERT entropy thresholds in nats (default {DEFAULT_ENTROPY})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed tries per batch and setting; the fastest counts",
    )
    parser.add_argument(
        "--time-batches",
        type=int,
        default=None,
        help="time only this many test batches, spread over the lengths (default: all); "
        "the metric still covers every example, replayed from the exits' logits",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where exits.png (and exits_summary.json) go"
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        dest="overrides",
        help="key=value changes to the runs' config",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.patience is None and args.entropy is None:
        args.patience, args.entropy = DEFAULT_PATIENCE, DEFAULT_ENTROPY
    try:
        if args.repeats < 1:
            raise FewtuneError(f"--repeats {args.repeats} must be >= 1")
        if args.time_batches is not None and args.time_batches < 1:
            raise FewtuneError(
                f"--time-batches {args.time_batches} must be >= 1 (or left out to time every batch)"
            )
        summary = run(
            args.paths,
            args.patience or [],
            args.entropy or [],
            args.repeats,
            args.out,
            args.overrides,
            args.time_batches,
        )
    except FewtuneError as err:
        raise SystemExit(f"error: {err}") from None
    title = f"{summary['task']} · {summary['model']} · {summary['method']} · peft={summary['peft']}"
    print(f"{title} · {len(summary['runs'])} run(s), seeds {summary['seeds']}\n")
    print(summary["table"])
    print(
        f"\nwritten: {RESULT_FILE} in each run; {PLOT_FILE}{' and ' + SUMMARY_FILE if len(summary['runs']) > 1 else ''} "
        f"in {summary['out']}",
        file=sys.stderr,
    )
