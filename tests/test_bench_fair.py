"""The fair, two-sided benchmark (bench/tuned.py, bench/two_sided.py) and the prepared GPU check
(bench/gpu_check.py), on tiny models on the CPU."""

import json

import pytest
import torch

from conftest import compose_cfg, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def built(model_dir, data_dir, tmp_path, method="prompt", *extra):
    from fewtune.run.build import build

    cfg = compose_cfg(tiny_overrides(model_dir, data_dir, method, *extra), tmp_path)
    torch.manual_seed(cfg.seed)
    datamodule, module = build(cfg)
    datamodule.setup()
    return cfg, datamodule, module


@pytest.mark.parametrize("method", ["prompt", "finetune"])
def test_the_tuned_loop_computes_what_fewtune_computes(method, tiny_causal, data_dir, tmp_path):
    from fewtune.bench import fewtune_side, tuned

    logits, times = {}, {}
    for side in (fewtune_side, tuned):
        cfg, datamodule, module = built(tiny_causal, data_dir, tmp_path, method)
        logits[side], times[side] = side.evaluate(cfg, module, datamodule, "cpu", set())
    torch.testing.assert_close(
        logits[tuned], logits[fewtune_side]
    )  # the same module, batches, scoring
    for timeline in times.values():
        summary = timeline.summary()
        assert summary["count"] == 1 and summary["tokens"] == [
            sum(len(e.input_ids) for e in datamodule.encoded["test"])
        ]
        longest = max(len(e.input_ids) for e in datamodule.encoded["test"])
        assert summary["shapes"] == [
            [16, longest]
        ]  # 16 test sentences; no ladder for CPU evaluation

    steps = {}
    for side in (fewtune_side, tuned):
        cfg, datamodule, module = built(tiny_causal, data_dir, tmp_path, method)
        before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
        torch.manual_seed(cfg.seed)
        steps[side] = side.train(cfg, module, datamodule, "cpu", 5).summary()
        assert any(
            not torch.equal(p, before[n]) for n, p in module.named_parameters() if n in before
        )
    for summary in steps.values():
        assert summary["count"] == 5 and summary["first_s"] > 0 and summary["steady_median_s"] > 0
        assert all(len(s) == 2 and s[0] == 1 for s in summary["shapes"])  # packed rows on the CPU
    # the same batches in the same order: the same packed lengths and the same tokens
    assert steps[tuned]["shapes"] == steps[fewtune_side]["shapes"]
    assert steps[tuned]["tokens"] == steps[fewtune_side]["tokens"]


def test_two_sided_measure_alternates_and_reports_per_step_figures(tiny_causal, data_dir, tmp_path):
    from fewtune.bench.two_sided import measure, order

    assert order(3) == ["fewtune", "tuned", "tuned", "fewtune", "fewtune", "tuned"]
    spec = {"overrides": tiny_overrides(tiny_causal, data_dir, "prompt"), "steps": 4, "rounds": 2}
    result = measure(spec, "train")
    for side in ("fewtune", "tuned"):
        assert len(result[side]["first_s"]) == 2 and len(result[side]["rounds"]) == 2
        assert all(len(r["per_item_s"]) == 4 for r in result[side]["rounds"])
        assert result[side]["distinct_shapes"] >= 1
    assert result["steady_ratio"] == pytest.approx(
        result["fewtune"]["steady_median_s"] / result["tuned"]["steady_median_s"], rel=1e-3
    )
    assert result["memory"]["peak_rss_mb"] > 0
    evaluated = measure({**spec, "rounds": 1}, "eval")
    assert evaluated["max_logit_difference"] < 1e-4 and len(evaluated["logits"]) == 16


def test_timeline_marks_new_shapes_and_keeps_the_first_step_apart():
    from fewtune.bench.timeline import Timeline

    seen, timeline = {(1, 24)}, Timeline()
    for shape in [(1, 24), (1, 32), (1, 32), (1, 40)]:
        timeline.start()
        timeline.stop(shape, seen, tokens=20)
    timeline.times = [1.0, 0.5, 0.1, 0.3]
    summary = timeline.summary()
    assert summary["new_shape"] == [False, True, False, True]
    assert summary["first_s"] == 1.0 and summary["steady_median_s"] == 0.3
    assert summary["new_shape_median_s"] == 0.4 and summary["seen_shape_median_s"] == 0.1
    assert summary["distinct_shapes"] == 3 and summary["tokens"] == [20] * 4


def test_gpu_check_runs_every_part_on_the_cpu(tiny_causal, tiny_masked, data_dir, tmp_path, capsys):
    from fewtune.bench.gpu_check import TRAIN_RUNS, main

    def case(model_dir, method):
        overrides = tiny_overrides(model_dir, data_dir, method)
        return [
            o
            for o in overrides
            if not o.startswith(("trainer.max_steps", "trainer.val_check", "task="))
        ]

    cases = {
        "tiny-causal/prompt": case(tiny_causal, "prompt"),
        "tiny-masked/finetune": case(tiny_masked, "finetune"),
        "tiny-llama/finetune": case(tiny_causal, "finetune"),  # a table-only name: D alone
    }
    out = main(
        ["--device", "cpu", "--steps", "3", "--out", str(tmp_path / "check.json")], cases=cases
    )
    printed = capsys.readouterr().out
    assert '"torch"' in printed and "== B" in printed and "== C" in printed and "== D" in printed
    assert set(out["train"]) == set(out["eval"]) == {"tiny-causal/prompt", "tiny-masked/finetune"}
    assert set(out["tables"]) == set(cases)
    assert "agreement_float32" in out["tables"]["tiny-llama/finetune"]
    for name in out["train"]:
        assert set(out["train"][name]) == {label for label, _ in TRAIN_RUNS}
        assert all(s["count"] == 3 for s in out["train"][name].values())
        assert "naive loop (float32, file order)" in out["eval"][name]
        assert out["tables"][name]["agreement"]["of"] == 16
    assert "agreement_float32" in out["tables"]["tiny-masked/finetune"]
    assert "*" in printed  # new shapes are marked
    assert json.loads((tmp_path / "check.json").read_text())["complete"] is True


def test_compare_interleaves_settings_step_by_step(tiny_causal, data_dir, tmp_path):
    from fewtune.bench.compare import main

    common = ["--case", "hf/prompt", "--device", "cpu", "--overrides", f"model.path={tiny_causal}",
              f"paths.data_dir={data_dir}", "k=4", "seed=13"]  # fmt: skip
    trained = main(["pack_training=true", "pack_training=false", "--steps", "3", *common])
    assert list(trained) == ["pack_training=true", "pack_training=false"]
    assert all(len(r["per_item_s"]) == 3 and r["median_s"] > 0 for r in trained.values())
    evaluated = main(["shapes.per_octave=0", "shapes.per_octave=4", "--eval", *common])
    assert [r["distinct_shapes"] for r in evaluated.values()] == [1, 1]


def test_host_memory_keep_is_applied_on_glibc_unless_the_user_set_malloc(monkeypatch):
    import platform
    import sys

    from fewtune.errors import FewtuneError
    from fewtune.run.hardware import keep_freed_host_memory

    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_host_memory("keep") is on_glibc
    assert keep_freed_host_memory("release") is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_host_memory("keep") is False  # the user's own setting wins
    with pytest.raises(FewtuneError, match="host_memory='always' is not one of keep, release"):
        keep_freed_host_memory("always")
