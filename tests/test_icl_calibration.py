"""Contextual calibration of in-context learning (Zhao et al., 2021): p_cf per demonstration set,
measured with the same demonstrations as the query, on the tiny backbones."""

import pytest
import torch

from conftest import compose_cfg, tiny_overrides
from fewtune.errors import FewtuneError
from fewtune.run.build import build
from fewtune.scoring.calibration import calibrate, calibrate_module
from fewtune.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = {"0": "terrible", "1": "great"}
ICL = (
    "method.calibrate=true",
    "method.demonstrations.total=2",
    "method.demonstrations.eval_sets=2",
)


def test_calibrate_takes_one_p_cf_per_row():
    probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]])
    p_cf = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    expected = torch.stack([calibrate(probs[i], p_cf[i]) for i in range(2)])
    torch.testing.assert_close(calibrate(probs, p_cf), expected)
    torch.testing.assert_close(calibrate(probs, p_cf)[0], torch.tensor([0.5, 0.5]))


@torch.no_grad()
def slot_probs(model, tokenizer, ids: list[int], slot: int) -> torch.Tensor:
    """The label words' probabilities from the full LM head, not the module's slot-only path."""
    words = [tokenizer.convert_tokens_to_ids(w) for w in ("Ġterrible", "Ġgreat")]
    return model(input_ids=torch.tensor([ids])).logits[0, slot, words].softmax(-1)


def test_calibrated_icl_scores_are_the_formula_with_p_cf_of_the_same_demonstrations(
    data_dir, tiny_causal, tmp_path
):
    cfg = compose_cfg(tiny_overrides(tiny_causal, data_dir, "icl", *ICL), tmp_path)
    dm, module = build(cfg)
    recorded = calibrate_module(cfg, module, dm)
    module.eval()
    tokenizer, model, train_set = dm.encoder.prompt.tokenizer, module.model, dm.examples["train"]
    groups = dm.encoded["test"][:3]
    with torch.no_grad():
        scored = module.label_logits(dm.collate(groups)).softmax(-1)

    expected, p_cfs = [], []
    for group in groups:
        calibrated = []
        for row in group:
            p = slot_probs(model, tokenizer, row.input_ids, row.slot)
            # The content-free query written out: the same demonstrations, "N/A" or "" as the sentence.
            demos = "".join(
                f"{train_set[j].fields['sentence']} It was {WORDS[train_set[j].label]}\n"
                for j in row.demos
            )
            free = [
                tokenizer.encode(demos + text + " It was", add_special_tokens=False)
                for text in ("N/A", "")
            ]
            p_cf = torch.stack(
                [slot_probs(model, tokenizer, ids, len(ids) - 1) for ids in free]
            ).mean(0)
            p_cfs.append(p_cf / p_cf.sum())
            q = p / p_cfs[-1]
            calibrated.append(q / q.sum())
        expected.append(torch.stack(calibrated).mean(0))  # averaged over the sets after calibration
    torch.testing.assert_close(scored, torch.stack(expected), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(
        torch.stack(p_cfs), torch.full((len(p_cfs), 2), 0.5), atol=1e-3
    )  # the tiny model is biased
    # Each query draws its own sets: one p_cf per distinct set of dev and test.
    distinct = {
        row.demos for split in ("dev", "test") for group in dm.encoded[split] for row in group
    }
    assert recorded["calibration_sets"] == len(distinct) > 2
    assert sum(recorded["calibration_p_cf"]) == pytest.approx(1.0)


def test_the_content_free_input_shows_the_querys_demonstration_tokens(
    data_dir, tiny_masked, tmp_path
):
    from fewtune.scoring.calibration import content_free_rows

    dm, _ = build(compose_cfg(tiny_overrides(tiny_masked, data_dir, "icl", *ICL), tmp_path))
    dm.setup()
    row = dm.encoded["dev"][0][1]
    (free,) = content_free_rows(dm, row.demos, ["N/A"])
    # query last (method=icl): everything before the query's part is the same demonstration text
    tokenizer = dm.encoder.prompt.tokenizer
    query_start = len(row.input_ids) - row.input_ids[::-1].index(tokenizer.sep_token_id, 1)
    assert free.input_ids[:query_start] == row.input_ids[:query_start] and free.demos == row.demos
    assert tokenizer.convert_ids_to_tokens(free.input_ids[query_start:]) == [
        "n",
        "/",
        "a",
        "it",
        "was",
        "[MASK]",
        ".",
        "[SEP]",
    ]


def test_fixed_sets_are_shared_by_every_query_and_calibrated_once_each(
    data_dir, tiny_causal, tmp_path
):
    cfg = compose_cfg(
        tiny_overrides(tiny_causal, data_dir, "icl", *ICL, "+method.demonstrations.fixed=true"),
        tmp_path,
    )
    dm, module = build(cfg)
    recorded = calibrate_module(cfg, module, dm)
    shown = {
        tuple(row.demos for row in group)
        for split in ("dev", "test")
        for group in dm.encoded[split]
    }
    assert (
        len(shown) == 1 and len(next(iter(shown))) == 2
    )  # the same 2 sets, in the same order, for all
    assert recorded["calibration_sets"] == 2 and set(dm.collate.p_cf) == set(next(iter(shown)))


@pytest.mark.parametrize("family", ["tiny_causal", "tiny_masked"])
def test_icl_with_calibrate_runs_end_to_end(family, data_dir, tmp_path, request):
    overrides = tiny_overrides(
        request.getfixturevalue(family), data_dir, "icl", "method.calibrate=true"
    )
    results = train(compose_cfg(overrides, tmp_path))
    assert results["method"] == "icl" and results["steps"] == 0 and 0 <= results["test"]["acc"] <= 1
    assert len(results["calibration_p_cf"]) == 2 and sum(
        results["calibration_p_cf"]
    ) == pytest.approx(1.0)
    assert results["calibration_sets"] > 1 and len(results["calibration_p_cf_std"]) == 2
    import json

    assert (
        json.loads((tmp_path / "metrics.json").read_text())["calibration_p_cf"]
        == results["calibration_p_cf"]
    )


def test_an_evaluation_cut_short_calibrates_only_the_sets_it_scores(
    data_dir, tiny_causal, tmp_path
):
    """debug=fast's limit_*_batches: p_cf for the sets of the batches evaluated, not the split's
    (with each query's own sets, a whole SST-2 test split is 872 sets: minutes on a CPU)."""
    limits = ("eval_batch_size=4", "trainer.limit_val_batches=1", "trainer.limit_test_batches=2")
    cfg = compose_cfg(tiny_overrides(tiny_causal, data_dir, "icl", *ICL, *limits), tmp_path)
    dm, module = build(cfg)
    recorded = calibrate_module(cfg, module, dm)
    reached = {
        row.demos
        for split, n in (("dev", 2), ("test", 4))
        for g in dm.encoded[split][:n]
        for row in g
    }
    everything = {row.demos for split in ("dev", "test") for g in dm.encoded[split] for row in g}
    assert dm.eval_batch_size == 2  # groups a batch: 4 rows, 2 sets each
    assert recorded["calibration_sets"] == len(reached) < len(everything)
    assert set(dm.collate.p_cf) == reached
    results = train(cfg)  # every batch evaluated finds its sets' p_cf
    assert results["scored"]["test"] == 4 and results["calibration_sets"] == len(reached)


@pytest.mark.parametrize("method", ["prompt-demo", "prompt"])
def test_calibrate_is_refused_for_trained_methods(method, data_dir, tiny_causal, tmp_path):
    overrides = tiny_overrides(tiny_causal, data_dir, method, "+method.calibrate=true")
    with pytest.raises(
        FewtuneError, match=rf"method '{method}': calibrate=true needs an untrained prompt"
    ) as err:
        train(compose_cfg(overrides, tmp_path))
    assert "\n" not in str(err.value)


def test_fixed_sets_with_similar_sampling_is_one_line(data_dir, tiny_causal, tmp_path):
    extra = ("+method.demonstrations.fixed=true", "method.demonstrations.sampling=similar")
    with pytest.raises(
        FewtuneError, match="fixed=true shows every query the same sets, but sampling=similar"
    ):
        build(compose_cfg(tiny_overrides(tiny_causal, data_dir, "icl", *extra), tmp_path))


def test_calibration_scores_its_rows_on_the_runs_evaluation_ladder(data_dir, tiny_causal, tmp_path):
    """The content-free rows meet the shapes of the dev and test batches, not one per batch;
    the ladder's padding changes no p_cf."""
    recorded, widths = {}, {}
    for per_octave in (0, 2):
        overrides = tiny_overrides(
            tiny_causal, data_dir, "icl", *ICL, f"shapes.per_octave={per_octave}"
        )
        cfg = compose_cfg(overrides, tmp_path / str(per_octave))
        dm, module = build(cfg)
        met = widths[per_octave] = set()
        hook = module.model.get_input_embeddings().register_forward_pre_hook(
            lambda _, args, met=met: met.add(args[0].shape[1])
        )
        recorded[per_octave] = calibrate_module(cfg, module, dm)
        hook.remove()
    ladder = dm.collate.eval_lengths
    assert ladder.per_octave == 2 and widths[2] <= set(ladder.sizes(max(widths[2])))
    assert not widths[0] <= set(ladder.sizes(max(widths[0])))  # without it, the rows' own lengths
    assert recorded[2]["calibration_p_cf"] == pytest.approx(
        recorded[0]["calibration_p_cf"], abs=1e-5
    )
