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
    torch.testing.assert_close(torch.tensor(ours["logits"]), torch.tensor(base["logits"]), rtol=1e-4, atol=1e-4)
    assert agreement(ours, base) == {"disagree": 0, "disagree_beyond_bf16_ties": 0, "of": 16}

    from fewtune.bench.worker import measure_train  # in this process: a third worker would add its start-up

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


def fake_results(peak: dict) -> dict:
    rates = {"examples_per_s": 10.0, "tokens_per_s": 100.0, "flops_per_token": 1e9, "peak_rss_mb": 1.0}
    steps = {"steps_per_s": 1.0, "tokens_per_s": 50.0, "peak_rss_mb": 1.0}
    case = {
        "eval_fewtune": rates, "eval_baseline": {**rates, "examples_per_s": 5.0, "tokens_per_s": 50.0},
        "train_fewtune": steps, "train_baseline": {**steps, "steps_per_s": 0.5},
        "startup": {"fewtune_s": 2.0, "baseline_s": 4.0}, "accuracy": {"fewtune": 0.5, "baseline": 0.5},
        "agreement": {"disagree": 0, "disagree_beyond_bf16_ties": 0, "of": 8},
    }  # fmt: skip
    return {"machine": "test", "peak_gflops": peak, "cases": {"m/prompt": case}, "load": {}}


def test_table_gives_ratios_and_mfu_against_the_peak_of_the_precision_fewtune_ran_in():
    from fewtune.bench.__main__ import render

    # 100 tokens/s x 1 GFLOP/token = 100 GFLOP/s
    with_bf16 = render(fake_results({"float32": 400.0, "bfloat16": 1000.0}))
    assert "| m | prompt | eval examples/s | 10.00 | 5.00 | 2.00x |" in with_bf16
    assert "| m | prompt | start to first step (s) | 2.00 | 4.00 | 2.00x |" in with_bf16
    assert "eval MFU (bfloat16 peak) | 10% | 12% (fp32 peak)" in with_bf16
    without = render(fake_results({"float32": 400.0}))  # a CPU that would only emulate bf16
    assert "eval MFU (float32 peak) | 25% |" in without and "bfloat16 not measured" in without
