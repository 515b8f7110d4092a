"""Contextual calibration (Zhao et al., 2021) and the prompt playground on tiny random backbones."""

import pytest
import torch

from fewtune.errors import FewtuneError
from fewtune.scoring.calibration import (
    calibrate,
    content_free_examples,
    content_free_probs,
    content_free_texts,
)
from fewtune.scoring.playground import Playground
from fewtune.scoring.probs import label_probs


def test_calibration_makes_the_content_free_distribution_uniform():
    p_cf = torch.tensor([0.8, 0.15, 0.05])  # a prompt biased towards label 0
    assert calibrate(p_cf, p_cf) == pytest.approx(torch.full((3,), 1 / 3))
    # a prediction that only follows the bias flips; rows stay distributions
    probs = torch.tensor([[0.58, 0.3, 0.12], [0.9, 0.05, 0.05]])
    q = calibrate(probs, p_cf)
    assert q.argmax(-1).tolist() == [2, 0]
    assert q.sum(-1) == pytest.approx(torch.ones(2))


def test_calibration_refuses_mismatched_or_zero_p_cf():
    with pytest.raises(FewtuneError, match="over 2 labels"):
        calibrate(torch.tensor([[0.5, 0.5]]), torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(FewtuneError, match="probability 0"):
        calibrate(torch.tensor([[0.5, 0.5]]), torch.tensor([1.0, 0.0]))


def test_content_free_inputs_fill_every_field_and_use_the_mask_token(bert_tokenizer, bpe_tokenizer):
    assert content_free_texts(bert_tokenizer) == ["N/A", "", "[MASK]"]
    assert content_free_texts(bpe_tokenizer) == ["N/A", ""]  # a causal LM has no mask token
    (pair,) = content_free_examples(["sentence1", "sentence2"], ["N/A"])
    assert dict(pair.fields) == {"sentence1": "N/A", "sentence2": "N/A"}


@pytest.fixture(scope="module", params=["masked", "causal"])
def playground(request, tiny_masked, tiny_causal, tmp_path_factory):
    from conftest import write_sst2_split

    data = write_sst2_split(tmp_path_factory.mktemp("data"))
    model = tiny_masked if request.param == "masked" else tiny_causal
    return Playground(
        "sst2", "hf", [f"model.path={model}", "k=4", "seed=13", f"paths.data_dir={data}"]
    )


def test_a_content_free_input_scores_uniform_after_calibration(playground):
    template = playground.default_template
    encoder = playground.encoder(template)
    p_cf = content_free_probs(playground.module, encoder, ["sentence"], ["N/A"])
    raw = label_probs(playground.module, encoder, content_free_examples(["sentence"], ["N/A"]))
    assert not torch.allclose(raw, torch.full_like(raw, 0.5))  # the random model is biased
    assert calibrate(raw, p_cf) == pytest.approx(torch.full_like(raw, 0.5))
    averaged = playground.content_free(template)  # over all of "N/A", "" (and the mask token)
    assert averaged.sum() == pytest.approx(1.0) and averaged.shape == (2,)


def test_label_probs_are_the_modules_own_zero_shot_scores(playground):
    from fewtune.data.datamodule import Collator

    encoder = playground.encoder(playground.default_template)
    examples = playground.dev[:4]
    batch = Collator(encoder.tokenizer.pad_token_id)([encoder.encode(ex, 0) for ex in examples])
    playground.module.eval()  # as zero-shot evaluation runs it: no dropout
    with torch.no_grad():
        expected = playground.module.label_logits(batch).softmax(-1)
    assert label_probs(playground.module, encoder, examples, batch_size=3) == pytest.approx(
        expected, abs=1e-6
    )


def test_label_probs_come_back_in_the_order_given_whatever_the_lengths(playground):
    from fewtune.data.tasks import Example
    from fewtune.scoring.probs import encoded_label_probs

    encoder = playground.encoder(playground.default_template)
    words = playground.dev[0].fields["sentence"].split()
    lengths = [1, 7, 3, 12, 5, 9]  # neither sorted nor reversed: batches are scored by length
    items = [
        encoder.encode(Example(fields={"sentence": " ".join(words * n)}, label=""), 0)
        for n in lengths
    ]
    pad, label_words = encoder.tokenizer.pad_token_id, encoder.label_words
    one_by_one = torch.cat(
        [encoded_label_probs(playground.module, [e], pad, label_words) for e in items]
    )
    batched = encoded_label_probs(playground.module, items, pad, label_words, batch_size=4)
    assert batched == pytest.approx(one_by_one, abs=1e-5)


def test_tokens_show_the_slot(playground):
    example = playground.dev[0]
    shown = playground.tokens(playground.default_template, example)
    if playground.causal:  # the last prompt token predicts the label word
        assert shown["slot"] == len(shown["ids"]) - 1 and shown["slot_token"] == "Ġwas"
        assert shown["text"].endswith("It was {mask}")
    else:
        assert shown["slot_token"] == "[MASK]" and shown["tokens"][0] == "[CLS]"
        assert shown["text"].endswith("It was [MASK] .")
    assert example.fields["sentence"].split()[0] in shown["text"]


def test_compare_and_examples(playground):
    templates = [
        playground.default_template,
        playground.default_template.replace("It was", "All in all, it was"),
    ]
    frame = playground.compare(templates)
    assert frame["template"].tolist() == templates
    assert frame["accuracy"].between(0, 100).all() and frame["calibrated"].between(0, 100).all()
    assert frame.loc[0, "accuracy"] == pytest.approx(100 * playground.accuracy(templates[0]))
    assert [ex.label for ex in playground.examples(3)] == ["0", "1", "0"]
    table = playground.probs_table(templates[0], playground.examples(2))
    assert list(table.columns) == [
        "text",
        "gold",
        "p(terrible)",
        "p(great)",
        "calibrated p(terrible)",
        "calibrated p(great)",
    ]


def test_a_template_unfit_for_the_family_is_one_line(playground):
    with pytest.raises(FewtuneError, match="lacks|after"):
        playground.encoder("{premise} It was {mask} .")


def test_zeroshot_with_calibrate_scores_content_free_input_uniformly(
    tiny_causal, data_dir, tmp_path
):
    from conftest import compose_cfg, tiny_overrides
    from fewtune.run.build import build
    from fewtune.train import train

    overrides = tiny_overrides(tiny_causal, data_dir, "zeroshot", "method.calibrate=true")
    results = train(compose_cfg(overrides, tmp_path / "run"))
    p_cf = torch.tensor(results["calibration_p_cf"])
    assert p_cf.sum() == pytest.approx(1.0) and (p_cf != 0.5).all()  # the tiny model is biased
    plain = train(
        compose_cfg(tiny_overrides(tiny_causal, data_dir, "zeroshot"), tmp_path / "plain")
    )
    assert "calibration_p_cf" not in plain

    datamodule, module = build(compose_cfg(overrides, tmp_path / "again"))
    module.p_cf = p_cf
    probs = label_probs(
        module, datamodule.encoder, content_free_examples(["sentence"], ["N/A", ""])
    )
    assert probs.mean(0) == pytest.approx(torch.tensor([0.5, 0.5]), abs=0.05)


def test_calibrate_refuses_a_trained_method(tiny_causal, data_dir, tmp_path):
    from conftest import compose_cfg, tiny_overrides
    from fewtune.train import train

    with pytest.raises(
        FewtuneError, match=r"method 'prompt': calibrate=true needs an untrained prompt"
    ):
        train(
            compose_cfg(
                tiny_overrides(tiny_causal, data_dir, "prompt", "+method.calibrate=true"), tmp_path
            )
        )
