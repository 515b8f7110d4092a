"""The prepared GPU check: one command that tells where a GPU step's time goes.

    python -m fewtune.bench.gpu_check              # on a GPU: the real backbones, about 3-4 minutes
    python -m fewtune.bench.gpu_check --tiny       # the tiny proxies (CPU or GPU), a minute or two
    python -m fewtune.bench.gpu_check --parts BC   # some parts only

A  the set-up: GPU, torch, CUDA, cuDNN, transformers, the SDPA kernels torch allows; then SDPA
   alone, forward and backward, ms per call for 6 lengths met for the first time, then the same
   again, in bf16 and float32, packed (block mask) and padded, with torch's choice of kernel and
   with each ``auto`` list (on CUDA: cuDNN left out), and which kernel ran.
B  training steps of fewtune's trainer, per step in ms, ``*`` where the step's input shape was new
   to the process (with that attention setting): without the length ladder as fewtune was, then
   with it, for each attention setting (default: torch's choice, cuDNN included; auto: fewtune's),
   packed and padded; the steady median of each, and on CUDA the host-device syncs of a step.
C  evaluation batches, likewise: the naive loop (float32), fewtune with each attention setting.
D  the two-sided tables: fewtune, the tuned plain loop and the naive loop on each of the
   benchmark's three cases (SmolLM2 prompt and fine-tuning, MiniLM fine-tuning; B and C study the
   first two), in this process (fewtune / tuned: what the framework costs; fewtune vs naive: what
   a user gains), and the classifier heads' predictions in bf16 and float32 against the naive
   loop's.

Runs on the CPU too (``--tiny``; the tests run it there). Prints as it goes; ``--out`` keeps JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fewtune.jobs.atomic import write_json_atomic

REAL = {
    "minilm-l6/finetune": ["model=minilm-l6"],
    "smollm2-135m/prompt": ["model=smollm2-135m"],
    "smollm2-135m/finetune": ["model=smollm2-135m"],
}
TINY_CASES = {
    "tiny-bert/finetune": "tiny-bert",
    "tiny-llama/prompt": "tiny-llama",
    "tiny-llama/finetune": "tiny-llama",
}
# In part D's tables only: the benchmark's three rows there; parts B and C study attention and
# the ladder on one classifier and one prompt case, which is enough and keeps the check short.
TABLES_ONLY = ("smollm2-135m/finetune", "tiny-llama/finetune")
# (label, overrides): the attention setting and packing each training run uses
TRAIN_RUNS = [
    ("no ladder, default attention, packed (as before)", ["shapes.per_octave=0", "sdpa_backends=default", "pack_training=true"]),
    ("ladder, default attention, packed", ["sdpa_backends=default", "pack_training=true"]),
    ("ladder, auto attention, packed", ["sdpa_backends=auto", "pack_training=true"]),
    ("ladder, default attention, padded", ["sdpa_backends=default", "pack_training=false"]),
    ("ladder, auto attention, padded (GPU default)", ["sdpa_backends=auto", "pack_training=false"]),
]  # fmt: skip
EVAL_RUNS = [
    ("no ladder, default attention", ["shapes.per_octave=0", "sdpa_backends=default"]),
    ("ladder, default attention", ["sdpa_backends=default"]),
    ("ladder, auto attention (default)", ["sdpa_backends=auto"]),
]


def say(text: str = "") -> None:
    print(text, flush=True)


def environment(device: str) -> dict:
    import transformers

    info = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "transformers": transformers.__version__,
        "sdpa_enabled": {
            name: getattr(torch.backends.cuda, f"{name}_sdp_enabled")()
            for name in ("flash", "mem_efficient", "math", "cudnn")
            if hasattr(torch.backends.cuda, f"{name}_sdp_enabled")
        },
    }
    say(json.dumps(info))
    return info


SDPA_SHAPES = {"minilm-like 12 heads x 32": (12, 32), "smollm2-like 9 heads x 64": (9, 64)}


def sdpa_call(length: int, heads: int, dim: int, dtype, layout: str, device: str) -> None:
    """One attention forward and backward: 8 examples packed into a row of ``length`` tokens
    (a block-diagonal mask), or 8 rows of ``length // 4`` with right padding."""
    batch, size = (1, length) if layout == "packed" else (8, length // 4)
    q, k, v = (
        torch.randn(batch, heads, size, dim, device=device, dtype=dtype, requires_grad=True)
        for _ in range(3)
    )
    if layout == "packed":
        example = torch.arange(size, device=device) * 8 // size
        mask = (example[:, None] == example[None, :])[None, None]
    else:
        lengths = torch.randint(1, size + 1, (batch, 1), device=device)
        mask = (torch.arange(size, device=device)[None] < lengths)[:, None, None, :]
    torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()


def sdpa_ms(setting, device: str, *call) -> float:
    from fewtune.bench.timeline import now
    from fewtune.models.attention import kernels

    with kernels(setting, device, "train"):
        start = now(device)
        sdpa_call(*call, device)
        return 1000 * (now(device) - start)


def sdpa_micro(device: str, out: dict) -> None:
    """Attention alone: does a new length cost more than one met before, per kernel choice?"""
    from fewtune.models.attention import allowed

    settings = {"default": "default", "auto (train)": "auto"}
    say(
        "\n== A: SDPA forward+backward, ms per call: 6 lengths new to the process | the same 6 again"
    )
    offset = 0
    for name, (heads, dim) in SDPA_SHAPES.items():
        for dtype in (torch.bfloat16, torch.float32):
            for layout in ("packed", "padded"):
                for label, setting in settings.items():
                    offset += 1
                    lengths = [
                        96 + 24 * i + offset for i in range(6)
                    ]  # distinct in every combination
                    sdpa_ms(
                        setting, device, 64 + offset, heads, dim, dtype, layout
                    )  # library loading, handles
                    new = [sdpa_ms(setting, device, n, heads, dim, dtype, layout) for n in lengths]
                    again = [
                        sdpa_ms(setting, device, n, heads, dim, dtype, layout) for n in lengths
                    ]
                    call = (lengths[0], heads, dim, dtype, layout, device)
                    ran = sdpa_kernels_ran(lambda call=call: sdpa_call(*call), setting, device)
                    say(
                        f"{name:26s} {str(dtype)[6:]:8s} {layout:6s} {label:12s} new: "
                        f"{' '.join(f'{t:6.1f}' for t in new)} | seen: {' '.join(f'{t:6.1f}' for t in again)} "
                        f"| allowed {allowed(setting, device, 'train') or 'all'} | ran {ran}"
                    )
                    out.setdefault("sdpa", []).append(
                        {"shape": name, "dtype": str(dtype), "layout": layout, "setting": label,
                         "new_ms": new, "seen_ms": again, "ran": ran}
                    )  # fmt: skip


def sdpa_kernels_ran(fn, setting, device: str) -> list[str]:
    from torch.profiler import ProfilerActivity, profile

    from fewtune.models.attention import kernels

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with kernels(setting, device, "train"), profile(activities=activities) as prof:
        fn()
    # the operators name the kernel: ..._flash_attention..., _efficient_attention, _cudnn_attention, _math
    names = {e.key for e in prof.key_averages()}
    return sorted(
        n for n in names if n.startswith("aten::_") and "attention" in n and "backward" not in n
    )


def marked(summary: dict) -> str:
    return " ".join(
        f"{1000 * t:.0f}{'*' if new else ''}"
        for t, new in zip(summary["per_item_s"], summary["new_shape"])
    )


def built(overrides: list[str], limit: int | None = None):
    from fewtune.bench.cases import built as build

    return build({"overrides": overrides, "limit": limit})


def seen_for(seen: dict, case: str, overrides: list[str]) -> set:
    """The shapes met in this process by runs of ``case`` with the same attention setting: a
    kernel's per-shape cache (cuDNN's plans) serves those runs alike."""
    attention = next((o for o in overrides if o.startswith("sdpa_backends=")), "sdpa_backends=auto")
    return seen.setdefault((case, attention), set())


def syncs_per_step(cfg, module, datamodule, device: str, side: str) -> float | None:
    """Host-device synchronisations in a few steps of one side (CUDA only), per step. The
    benchmark's timer adds its own to both sides alike (the token count it reads each step)."""
    if device != "cuda":
        return None
    import warnings

    from fewtune.bench import fewtune_side, tuned

    steps = 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            (fewtune_side if side == "fewtune" else tuned).train(
                cfg, module, datamodule, device, steps
            )
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def part_b(cases: dict, device: str, steps: int, out: dict) -> None:
    from fewtune.bench import fewtune_side

    say(
        "\n== B: training steps in fewtune's trainer, ms per step (* = input shape new to this process)"
    )
    seen: dict = {}
    for name, overrides in cases.items():
        for reseed, (label, extra) in enumerate(TRAIN_RUNS):
            cfg, datamodule, module = built([*overrides, *extra])
            torch.manual_seed(reseed)  # another batch order each run: other packed lengths
            timeline = fewtune_side.train(
                cfg, module, datamodule, device, steps, seen_for(seen, name, extra)
            )
            summary = timeline.summary()
            say(
                f"{name:22s} {label:48s} steady median {1000 * summary['steady_median_s']:7.1f} ms, "
                f"new-shape steps {_ms(summary['new_shape_median_s'])}, seen {_ms(summary['seen_shape_median_s'])}, "
                f"{summary['distinct_shapes']} shapes"
            )
            say(f"    {marked(summary)}")
            out.setdefault("train", {}).setdefault(name, {})[label] = summary
        if device == "cuda":
            for side in ("fewtune", "tuned"):
                cfg, datamodule, module = built(
                    [*overrides, "sdpa_backends=auto", "pack_training=auto"]
                )
                per_step = syncs_per_step(cfg, module, datamodule, device, side)
                say(f"{name:22s} host-device syncs a step ({side}, GPU defaults): {per_step:.1f}")
                out.setdefault("syncs", {}).setdefault(name, {})[side] = per_step


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f} ms"


def part_c(cases: dict, device: str, limit: int | None, out: dict) -> None:
    from fewtune.bench import fewtune_side
    from fewtune.bench.baseline import evaluate
    from fewtune.bench.cases import file_order_test_items, label_word_ids

    say("\n== C: evaluation, ms per batch (* = input shape new to this process)")
    seen: dict = {}
    for name, overrides in cases.items():
        cfg, datamodule, module = built(overrides, limit)
        items, _ = file_order_test_items(datamodule, limit)
        model = module.model.float().to(device)
        _, timeline = evaluate(
            model, items, datamodule.collate.pad_id, label_word_ids(module), device=device
        )
        _show_eval(name, "naive loop (float32, file order)", timeline, out)
        for label, extra in EVAL_RUNS:
            cfg, datamodule, module = built([*overrides, *extra], limit)
            _, timeline = fewtune_side.evaluate(
                cfg, module, datamodule, device, seen_for(seen, name, extra)
            )
            _show_eval(name, label, timeline, out)


def _show_eval(name: str, label: str, timeline, out: dict) -> None:
    if not timeline.new:  # the naive loop keeps no process-wide record: mark its shapes here
        met: set = set()
        timeline.new = [not (s in met or met.add(s)) for s in timeline.shapes]
    summary = timeline.summary()
    outside = (
        ""
        if summary["wall_s"] is None
        else f", outside the batches {summary['wall_s'] - summary['total_s']:.2f} s"
    )
    say(
        f"{name:22s} {label:36s} {summary['total_s']:6.2f} s in batches{outside}, median "
        f"{1000 * summary['steady_median_s']:.1f} ms, {summary['distinct_shapes']} shapes"
    )
    say(f"    {marked(summary)}")
    out.setdefault("eval", {}).setdefault(name, {})[label] = summary


def part_d(cases: dict, device: str, steps: int, limit: int | None, out: dict, keep) -> None:
    from fewtune.bench.__main__ import agreement
    from fewtune.bench.baseline import evaluate, train_steps
    from fewtune.bench.cases import file_order_test_items, in_file_order, label_word_ids
    from fewtune.bench.two_sided import measure

    say("\n== D: fewtune, the tuned plain loop and the naive loop (steady medians, ms)")
    say(
        "| case | figure | fewtune | tuned | naive | fewtune / tuned (time) | fewtune vs naive (speed-up) |"
    )
    say("|---|---|---|---|---|---|---|")
    for name, overrides in cases.items():
        spec = {
            "overrides": overrides,
            "device": device,
            "steps": steps,
            "limit": limit,
            "rounds": 2,
        }
        pair = {kind: measure(spec, kind) for kind in ("train", "eval")}
        cfg, datamodule, module = built(overrides, limit)
        model = module.model.float().to(device)
        torch.manual_seed(cfg.seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr)
        naive_train = train_steps(
            model, optimizer, datamodule, label_word_ids(module), steps, device
        ).summary()
        cfg, datamodule, module = built(overrides, limit)
        items, order = file_order_test_items(datamodule, limit)
        model = module.model.float().to(device)
        naive_logits, naive_eval = evaluate(
            model, items, datamodule.collate.pad_id, label_word_ids(module), device=device
        )
        naive = {"train": naive_train, "eval": naive_eval.summary()}
        for kind, label in (("train", "train step"), ("eval", "eval batch")):
            ours, tuned = (
                pair[kind]["fewtune"]["steady_median_s"],
                pair[kind]["tuned"]["steady_median_s"],
            )
            theirs = naive[kind]["steady_median_s"]
            say(
                f"| {name} | {label} | {1000 * ours:.1f} | {1000 * tuned:.1f} | {1000 * theirs:.1f} | "
                f"{ours / tuned:.2f}x | {theirs / ours:.2f}x |"
            )
        ours_logits = in_file_order(torch.tensor(pair["eval"]["logits"]), order)
        labels = [it.label for it in items]
        agree = agreement({"logits": ours_logits.tolist()}, {"logits": naive_logits.tolist()})
        say(f"| {name} | predictions vs naive (bf16 where fewtune runs it) | {agree} | | | | |")
        entry = {
            "pair": {k: {s: v for s, v in p.items() if s != "logits"} for k, p in pair.items()},
            "naive": naive,
        }
        entry["agreement"] = agree
        entry["accuracy"] = float((ours_logits.argmax(-1) == torch.tensor(labels)).float().mean())
        if (
            "finetune" in name
        ):  # the classifier head's 101-of-872 disagreement on the H200: bf16 or not?
            cfg, datamodule, module = built([*overrides, "trainer.precision=32-true"], limit)
            fp32, _ = _fewtune_eval(cfg, module, datamodule, device)
            entry["agreement_float32"] = agreement(
                {"logits": in_file_order(fp32, order).tolist()}, {"logits": naive_logits.tolist()}
            )
            say(
                f"| {name} | predictions vs naive, fewtune in float32 | {entry['agreement_float32']} | | | | |"
            )
        out.setdefault("tables", {})[name] = entry
        keep()  # each case's table kept as it ends


def _fewtune_eval(cfg, module, datamodule, device):
    from fewtune.bench import fewtune_side

    return fewtune_side.evaluate(cfg, module, datamodule, device)


def main(argv: list[str] | None = None, cases: dict[str, list[str]] | None = None) -> dict:
    """``cases``: name -> Hydra overrides (the tests pass their tiny models); else the real or
    the tiny backbones, with ``experiment=cpu``'s protocol and SST-2."""
    parser = argparse.ArgumentParser(prog="python -m fewtune.bench.gpu_check", description=__doc__)
    parser.add_argument(
        "--tiny", action="store_true", help="the tiny proxy backbones instead of the real ones"
    )
    parser.add_argument("--parts", default="ABCD")
    parser.add_argument("--steps", type=int, default=12, help="training steps a run")
    parser.add_argument(
        "--limit", type=int, default=None, help="test examples evaluated (default: all 872)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--out", type=Path, default=None, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    from fewtune.run.hardware import keep_freed_host_memory

    keep_freed_host_memory()  # as a run has it (the naive loop of part D shares this process)
    accelerator = f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}"
    common = ["experiment=cpu", "task=sst2", "logger=none", accelerator]
    if cases is None:
        if args.tiny:
            from fewtune.bench.cases import compose
            from fewtune.bench.tiny import tiny_overrides

            cache_dir = compose(["logger=none"]).paths.cache_dir
            cases = {name: tiny_overrides(model, cache_dir) for name, model in TINY_CASES.items()}
        else:
            cases = dict(REAL)
        cases = {
            name: [*overrides, f"method={name.split('/')[1]}"] for name, overrides in cases.items()
        }
    cases = {name: [*common, *overrides] for name, overrides in cases.items()}
    out: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": argv}
    start = time.perf_counter()

    # Written after every part: a check stopped at a device's time limit keeps the parts done.
    def keep() -> None:
        out["seconds"] = round(time.perf_counter() - start, 1)
        if args.out is not None:
            write_json_atomic(args.out, out)

    if "A" in args.parts:
        out["environment"] = environment(args.device)
        sdpa_micro(args.device, out)
        keep()
    studied = {name: overrides for name, overrides in cases.items() if name not in TABLES_ONLY}
    if "B" in args.parts:
        part_b(studied, args.device, args.steps, out)
        keep()
    if "C" in args.parts:
        part_c(studied, args.device, args.limit, out)
        keep()
    if "D" in args.parts:
        part_d(cases, args.device, args.steps, args.limit, out, keep)
    out["complete"] = True
    keep()
    say(f"\ngpu_check done in {out['seconds']:.0f} s")
    return out


if __name__ == "__main__":
    main()
