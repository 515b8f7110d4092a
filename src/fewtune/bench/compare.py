"""Settings compared step by step, interleaved, on this device: how the per-device defaults were
chosen (pack_training, sdpa_backends, shapes).

    python -m fewtune.bench.compare pack_training=true pack_training=false
    python -m fewtune.bench.compare sdpa_backends=[math] sdpa_backends=default --case minilm-l6/finetune
    python -m fewtune.bench.compare shapes.per_octave=0 shapes.per_octave=4 --eval

Each setting gets its own module (the same seed) and runs the tuned loop (bench/tuned.py: what
fewtune computes, without Lightning); their steps (or evaluation batches) alternate, A B A B ...,
so a machine whose load changes slows every setting alike, and each is timed from its own start.
Prints each setting's median and mean and their ratios to the first setting's.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from fewtune.bench.timeline import Timeline


def settings_built(case: str, settings: list[str], common: list[str], limit: int | None):
    from fewtune.bench.cases import built

    model, method = case.split("/")
    base = [
        f"model={model}",
        f"method={method}",
        "experiment=cpu",
        "task=sst2",
        "logger=none",
        *common,
    ]
    return [built({"overrides": [*base, *setting.split()], "limit": limit}) for setting in settings]


def compare_training(
    case: str, settings: list[str], steps: int, common: list[str], device: str
) -> dict:
    from fewtune.bench.tuned import TrainLoop

    runs = settings_built(case, settings, common, None)
    loops = []
    for cfg, datamodule, module in runs:
        torch.manual_seed(cfg.seed)  # the same shuffled batches for every setting
        loops.append(TrainLoop(cfg, module, datamodule, device, steps))
    timelines = [Timeline(device, each_from_start=True) for _ in settings]
    try:
        for _ in range(steps):
            for loop, timeline in zip(loops, timelines):
                loop.step(timeline)
    finally:
        for loop in loops:
            loop.close()
    return report(settings, timelines, "train step")


def compare_evaluation(
    case: str, settings: list[str], common: list[str], device: str, limit: int | None
) -> dict:
    from fewtune.bench.precision import autocast
    from fewtune.bench.tuned import to_device
    from fewtune.models.attention import kernels

    runs = settings_built(case, settings, common, limit)
    loaders = [iter(datamodule.test_dataloader()) for _, datamodule, _ in runs]
    timelines = [Timeline(device, each_from_start=True) for _ in settings]
    for _, _, module in runs:
        module.to(device).eval()
    with torch.inference_mode():
        for batches in zip(*loaders):
            for (cfg, _, module), batch, timeline in zip(runs, batches, timelines):
                timeline.start()
                with (
                    kernels(cfg.get("sdpa_backends", "auto"), device, "eval"),
                    autocast(cfg.trainer.precision, device),
                ):
                    module.label_logits(to_device(batch, device)).float().cpu()
                timeline.stop(tuple(batch["input_ids"].shape))
    return report(settings, timelines, "eval batch")


def report(settings: list[str], timelines: list[Timeline], what: str) -> dict:
    out = {}
    first = None
    for setting, timeline in zip(settings, timelines):
        steady = timeline.times[1:] or timeline.times
        median, mean = statistics.median(steady), statistics.fmean(steady)
        first = first or (median, mean)
        out[setting] = {
            "median_s": median, "mean_s": mean, "first_s": timeline.times[0], "total_s": sum(timeline.times),
            "distinct_shapes": len(set(timeline.shapes)), "per_item_s": timeline.times,
        }  # fmt: skip
        print(
            f"{what:10s} {setting:40s} median {1000 * median:8.1f} ms ({median / first[0]:.3f}x), mean "
            f"{1000 * mean:8.1f} ms ({mean / first[1]:.3f}x), first {1000 * timeline.times[0]:8.1f} ms, "
            f"total {sum(timeline.times):7.2f} s, {len(set(timeline.shapes))} shapes",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m fewtune.bench.compare", description=__doc__)
    parser.add_argument(
        "settings", nargs="+", help="one setting each (Hydra overrides, space-separated in quotes)"
    )
    parser.add_argument("--case", default="smollm2-135m/prompt", help="model/method")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument(
        "--eval", action="store_true", help="compare evaluation batches (the test split), not steps"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="test examples (the shortest first)"
    )
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="Hydra overrides for every setting"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from fewtune.run.hardware import keep_freed_host_memory

    keep_freed_host_memory()  # as a run has it
    common = [f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}", *args.overrides]
    if args.eval:
        result = compare_evaluation(args.case, args.settings, common, args.device, args.limit)
    else:
        result = compare_training(args.case, args.settings, args.steps, common, args.device)
    if args.out is not None:
        args.out.write_text(
            json.dumps({"command": argv, "case": args.case, "result": result}, indent=1)
        )
    return result


if __name__ == "__main__":
    main()
