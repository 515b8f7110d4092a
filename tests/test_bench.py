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
    the mean time of each phase and the profiler's operators."""
    from fewtune.bench.profile_step import main

    main(tiny_overrides(tiny_causal, data_dir, "prompt"))
    out = capsys.readouterr().out
    for phase in ("forward", "backward", "optimizer"):
        assert f"{phase}: " in out
    assert "aten::" in out  # the profiler's table of operators
