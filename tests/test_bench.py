"""The benchmark's measurements, on a tiny model: fewtune and the plain-transformers baseline
evaluate the same examples in their own processes and predict the same labels."""

import torch

from conftest import tiny_overrides
from fewtune.bench.__main__ import agreement, run_worker


def test_fewtune_and_baseline_agree_and_are_timed(tiny_causal, data_dir):
    overrides = tiny_overrides(tiny_causal, data_dir, "prompt")
    spec = {"kind": "eval", "overrides": overrides, "limit": None}
    ours = run_worker({**spec, "impl": "fewtune"})
    base = run_worker({**spec, "impl": "baseline"})
    assert ours["examples"] == base["examples"] == 16
    assert ours["labels"] == base["labels"]  # both in the test file's order
    assert ours["examples_per_s"] > 0 and ours["peak_rss_mb"] > 0
    torch.testing.assert_close(
        torch.tensor(ours["logits"]), torch.tensor(base["logits"]), rtol=1e-4, atol=1e-4
    )
    assert agreement(ours, base) == {"disagree": 0, "disagree_beyond_bf16_ties": 0, "of": 16}

    from fewtune.bench.worker import (
        measure_train,  # in this process: a third worker would add its start-up
    )

    train = measure_train({**spec, "kind": "train", "impl": "fewtune", "steps": 2, "warmup": 1})
    assert train["steps"] == 2 and train["steps_per_s"] > 0


def test_profile_step_times_each_phase_on_the_chosen_device(tiny_causal, data_dir, capsys):
    """profile_step runs the steps where trainer.accelerator puts them (here the CPU) and prints
    the mean time of each phase and the profiler's operators, then the same for Lightning's loop."""
    from fewtune.bench.profile_step import main

    main(tiny_overrides(tiny_causal, data_dir, "prompt"))
    out = capsys.readouterr().out
    for phase in ("forward", "backward", "optimizer"):
        assert f"{phase}: " in out
    by_hand, lightning = out.split("lightning step: ")
    assert "aten::" in by_hand and "aten::" in lightning  # a table of operators for each
    assert "(mean of 10;" in lightning and "Optimizer.step" in lightning


def timeline(median: float, first: float, count: int = 4, shapes: int = 2) -> dict:
    per_item = [first] + [median] * (count - 1)
    return {
        "per_item_s": per_item,
        "first_s": first,
        "steady_median_s": median,
        "distinct_shapes": shapes,
    }


def side(median: float, first: float) -> dict:
    return {
        "steady_median_s": median,
        "first_s": [first],
        "distinct_shapes": 2,
        "rounds": [timeline(median, first)],
    }


def fake_results(peak: dict) -> dict:
    # 4 batches of 0.1 s for 4 examples: 10 examples/s, the naive loop 5 examples/s
    eval_pair = {
        "fewtune": side(0.1, 0.1),
        "tuned": side(0.08, 0.08),
        "examples": 4,
        "tokens": 40,
        "flops_per_token": 1e9,
        "peak_rss_mb": 1.0,
        "steady_ratio": 1.25,
    }
    eval_naive = {
        "examples_per_s": 5.0,
        "tokens_per_s": 50.0,
        "flops_per_token": 1e9,
        "peak_rss_mb": 2.0,
        "batches": timeline(0.2, 0.3),
    }
    train_pair = {
        "fewtune": side(0.5, 2.0),
        "tuned": side(0.5, 1.0),
        "peak_rss_mb": 1.0,
        "steady_ratio": 1.0,
    }
    train_naive = {"peak_rss_mb": 1.0, "step_times": timeline(1.0, 1.5, shapes=4)}
    case = {
        "eval_pair": eval_pair, "eval_baseline": eval_naive, "train_pair": train_pair, "train_baseline": train_naive,
        "startup": {"fewtune_s": 2.0, "baseline_s": 4.0}, "accuracy": {"fewtune": 0.5, "baseline": 0.5},
        "agreement": {"disagree": 0, "disagree_beyond_bf16_ties": 0, "of": 8},
    }  # fmt: skip
    proxy = {"tiny-llama/prompt": {"train_pair": train_pair, "eval_pair": eval_pair}}
    return {
        "machine": "test",
        "peak_gflops": peak,
        "cases": {"m/prompt": case},
        "load": {},
        "proxy": proxy,
    }


def test_table_gives_both_ratios_and_mfu_against_the_peak_of_the_precision_fewtune_ran_in():
    from fewtune.bench.__main__ import render

    # 10 examples/s x 10 tokens/example x 1 GFLOP/token = 100 GFLOP/s
    with_bf16 = render(fake_results({"float32": 400.0, "bfloat16": 1000.0}))
    assert (
        "| m | prompt | eval examples/s (sum of batches) | 10.00 | 12.50 | 5.00 | 2.00x | 1.25x |"
        in with_bf16
    )
    assert (
        "| m | prompt | train step, median (ms) | 500.00 | 500.00 | 1000.00 | 2.00x | 1.00x |"
        in with_bf16
    )
    assert "| m | prompt | train first step (ms) | 2000.00 | 1000.00 | 1500.00 |" in with_bf16
    assert "| m | prompt | train distinct shapes | 2 | 2 | 4 |" in with_bf16
    assert "| m | prompt | start to first step (s) | 2.00 | | 4.00 | 2.00x | |" in with_bf16
    assert "eval MFU | 10% (bfloat16 peak) | | 12% (fp32 peak)" in with_bf16
    # the proxy: 1.25x is within the limit, and the difference is in ms
    assert (
        "| tiny-llama (smollm2-135m) | prompt | eval batch, median | 100.0 | 80.0 | 20.0 | 1.25x | yes |"
        in with_bf16
    )
    without = render(fake_results({"float32": 400.0}))  # a CPU that would only emulate bf16
    assert "eval MFU | 25% (float32 peak) |" in without and "bfloat16 not measured" in without
