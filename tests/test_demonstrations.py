"""Demonstrations (LM-BFF) and in-context learning: rendering, truncation, sampling, averaging, runs."""

import math
import random

import pytest
import torch

from conftest import NEGATIVE, POSITIVE, compose_cfg, load_task, tiny_overrides
from fewtune.data.demo_datamodule import DemoDataModule
from fewtune.data.demo_encoding import DemonstrationEncoder
from fewtune.data.demonstrations import DemoSampler, DemoSettings
from fewtune.data.encoding import PromptEncoder
from fewtune.data.prompts import Template
from fewtune.data.tasks import Example
from fewtune.data.verbalizers import Verbalizer
from fewtune.errors import FewtuneError
from fewtune.models.demo_head import average_sets
from fewtune.run.build import build
from fewtune.train import train

SST2 = Verbalizer({"0": "terrible", "1": "great"}, ["0", "1"])
QUERY = Example({"sentence": "a fine film"}, "1")
DEMOS = [
    (Example({"sentence": "bad movie"}, "0"), 0),
    (Example({"sentence": "good movie"}, "1"), 1),
]


def demo_encoder(tokenizer, causal, max_length=64, query_first=None):
    template = "{sentence} It was {mask}" if causal else "{sentence} It was {mask} ."
    prompt = PromptEncoder(tokenizer, Template(template), SST2, max_length, causal=causal)
    return DemonstrationEncoder(
        prompt, max_length, query_first=not causal if query_first is None else query_first
    )


def tokens(tokenizer, encoded):
    return tokenizer.convert_ids_to_tokens(encoded.input_ids)


# Rendering


def test_masked_lm_query_first_then_demonstrations_with_their_label_words(bert_tokenizer):
    out = demo_encoder(bert_tokenizer, causal=False).encode(QUERY, 1, DEMOS)
    assert tokens(bert_tokenizer, out) == [
        "[CLS]", "a", "fine", "film", "it", "was", "[MASK]", ".", "[SEP]",
        "bad", "movie", "it", "was", "terrible", ".", "[SEP]",
        "good", "movie", "it", "was", "great", ".", "[SEP]",
    ]  # fmt: skip
    assert out.slot == 6 and out.label == 1


def test_causal_lm_demonstrations_first_and_the_query_ends_the_prompt(bpe_tokenizer):
    out = demo_encoder(bpe_tokenizer, causal=True).encode(QUERY, 1, DEMOS)
    assert tokens(bpe_tokenizer, out) == [
        "bad", "Ġmovie", "ĠIt", "Ġwas", "Ġterrible", "Ċ",
        "good", "Ġmovie", "ĠIt", "Ġwas", "Ġgreat", "Ċ",
        "a", "Ġfine", "Ġfilm", "ĠIt", "Ġwas",
    ]  # fmt: skip
    assert out.slot == len(out.input_ids) - 1  # the last token predicts the label word


def test_masked_lm_with_the_query_last(bert_tokenizer):
    out = demo_encoder(bert_tokenizer, causal=False, query_first=False).encode(QUERY, 1, DEMOS[:1])
    toks = tokens(bert_tokenizer, out)
    assert toks == [
        "[CLS]",
        "bad",
        "movie",
        "it",
        "was",
        "terrible",
        ".",
        "[SEP]",
        "a",
        "fine",
        "film",
        "it",
        "was",
        "[MASK]",
        ".",
        "[SEP]",
    ]
    assert toks[out.slot] == "[MASK]"


# Truncation


def test_truncation_cuts_demonstrations_first_and_keeps_the_query_whole(bert_tokenizer):
    long = [
        (Example({"sentence": "word " * 30}, "0"), 0),
        (Example({"sentence": "good movie"}, "1"), 1),
    ]
    out = demo_encoder(bert_tokenizer, causal=False, max_length=24).encode(QUERY, 1, long)
    # 24 = [CLS] + query (7) + [SEP] + 3 of 30 "word"s + "it was terrible ." + [SEP] + the short demo whole (6) + [SEP]
    assert tokens(bert_tokenizer, out) == [
        "[CLS]", "a", "fine", "film", "it", "was", "[MASK]", ".", "[SEP]",
        "word", "word", "word", "it", "was", "terrible", ".", "[SEP]",
        "good", "movie", "it", "was", "great", ".", "[SEP]",
    ]  # fmt: skip


def test_truncation_drops_the_demonstration_farthest_from_the_query(bpe_tokenizer):
    enc = demo_encoder(bpe_tokenizer, causal=True, max_length=12)
    out = enc.encode(QUERY, 1, DEMOS)
    # Room for one demonstration: the causal prompt keeps the one next to the query.
    assert tokens(bpe_tokenizer, out) == [
        "good",
        "Ġmovie",
        "ĠIt",
        "Ġwas",
        "Ġgreat",
        "Ċ",
        "a",
        "Ġfine",
        "Ġfilm",
        "ĠIt",
        "Ġwas",
    ]


def test_a_query_longer_than_max_length_comes_alone_and_cut(bert_tokenizer):
    out = demo_encoder(bert_tokenizer, causal=False, max_length=10).encode(
        Example({"sentence": "word " * 30}, "1"), 1, DEMOS
    )
    assert tokens(bert_tokenizer, out) == [
        "[CLS]",
        "word",
        "word",
        "word",
        "word",
        "it",
        "was",
        "[MASK]",
        ".",
        "[SEP]",
    ]


# Sampling


def settings(**kw):
    return DemoSettings.from_method({"name": "t", "head": "lm", "demonstrations": kw}, causal=False)


def test_similar_sampling_draws_from_the_nearest_of_each_class():
    # Training examples 0-3 are class 0, 4-7 class 1; similarity to the query is the index's fake score.
    sampler = DemoSampler([0, 0, 0, 0, 1, 1, 1, 1], 2, settings(sampling="similar", top_share=0.5))
    similarity = [0.1, 0.9, 0.8, 0.2, 0.7, 0.3, 0.95, 0.0]
    assert sampler.candidates(similarity=similarity) == [[1, 2], [6, 4]]
    drawn = {
        tuple(sampler.draw(sampler.candidates(similarity=similarity), random.Random(s)))
        for s in range(50)
    }
    assert drawn == {
        (1, 6),
        (1, 4),
        (2, 6),
        (2, 4),
    }  # one per class, in label order, only the top half


def test_similar_sampling_with_a_fake_sentence_encoder(data_dir, bpe_tokenizer):
    """The data module embeds every text once; each query's pools hold its nearest training examples."""
    # Sentences on a half circle: negative i at 10i degrees, positive i at 40 + 10i degrees.
    angles = {s: 10 * i for i, s in enumerate(NEGATIVE)} | {
        s: 40 + 10 * i for i, s in enumerate(POSITIVE)
    }
    calls = []

    def embed(texts):
        calls.append(len(texts))
        return torch.tensor(
            [[math.cos(math.radians(angles[t])), math.sin(math.radians(angles[t]))] for t in texts]
        )

    module = datamodule(data_dir, bpe_tokenizer, embed, sampling="similar", top_share=0.25)
    module.setup()
    assert calls == [8, 8, 16]  # train, dev, test: embedded once per run
    train = module.encoded["train"].examples

    def nearest(split, text):
        q = next(i for i, ex in enumerate(module.examples[split]) if ex.fields["sentence"] == text)
        return [[train[j].fields["sentence"] for j in pool] for pool in module.pools[split][q]]

    # A test sentence is also a training one: its own copy is the nearest of its class.
    assert nearest("test", NEGATIVE[1]) == [[NEGATIVE[1]], [POSITIVE[0]]]
    assert nearest("test", POSITIVE[2]) == [[NEGATIVE[3]], [POSITIVE[2]]]
    # A training query is not its own demonstration: its neighbour is.
    assert nearest("train", NEGATIVE[0]) == [[NEGATIVE[1]], [POSITIVE[0]]]
    assert nearest("train", POSITIVE[3]) == [[NEGATIVE[3]], [POSITIVE[2]]]


def test_a_training_query_is_never_its_own_demonstration():
    sampler = DemoSampler([0, 0, 1, 1, 1], 2, settings(per_class=1))
    for query in range(5):
        pools = sampler.candidates(exclude=query)
        for seed in range(20):
            assert query not in sampler.draw(pools, random.Random(seed))
    # per_class=1 leaves class 0 one candidate once its other example is the query
    assert sampler.candidates(exclude=0)[0] == [1]


def test_total_draws_k_from_the_whole_set_in_random_order():
    sampler = DemoSampler([0, 0, 1, 1, 1], 2, settings(total=3))
    draws = {
        tuple(sampler.draw(sampler.candidates(exclude=4), random.Random(s))) for s in range(50)
    }
    assert all(len(set(d)) == 3 and 4 not in d for d in draws) and len(draws) > 6


# Test-time averaging


def datamodule(data_dir, bpe_tokenizer, embed=None, seed=13, **demos):
    task = load_task("sst2")
    prompt = PromptEncoder(
        bpe_tokenizer, Template(task.templates["causal"]), SST2, task.max_length, causal=True
    )
    return DemoDataModule(
        task, prompt, pad_id=bpe_tokenizer.pad_token_id, data_dir=data_dir, k=4, data_seed=13,
        settings=settings(**demos), seed=seed, embed=embed,
    )  # fmt: skip


def test_evaluation_demonstration_sets_are_fixed_by_the_seed(data_dir, bpe_tokenizer):
    def test_ids(seed):
        module = datamodule(data_dir, bpe_tokenizer, seed=seed, eval_sets=4)
        module.setup()
        return [[e.input_ids for e in group] for group in module.encoded["test"]]

    first = test_ids(13)
    assert len(first) == 16 and all(len(group) == 4 for group in first)
    assert first == test_ids(13)
    assert first != test_ids(14)
    assert any(
        len({tuple(ids) for ids in group}) > 1 for group in first
    )  # the sets differ within a query


def test_average_sets_of_probabilities_and_of_logits():
    logits = torch.tensor(
        [[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 0.0]]
    )  # two examples, two sets each
    probs = average_sets(logits, 2).softmax(-1)
    expected = logits.softmax(-1).view(2, 2, 2).mean(1)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(
        average_sets(logits, 2, "logits"), torch.tensor([[1.0, 0.5], [2.0, 0.5]])
    )
    assert average_sets(logits, 1) is logits


def test_evaluation_averages_each_query_over_its_sets(data_dir, tiny_causal, tmp_path):
    overrides = tiny_overrides(
        tiny_causal, data_dir, "prompt-demo", "method.demonstrations.eval_sets=3"
    )
    dm, module = build(compose_cfg(overrides, tmp_path))
    dm.setup()
    module.eval()
    batch = next(iter(dm.test_dataloader()))
    assert batch["input_ids"].size(0) == 3 * batch["labels"].size(0) and batch["sets"] == 3
    with torch.no_grad():
        averaged = module.label_logits(batch)
        rows = super(type(module), module).label_logits(
            batch
        )  # PromptModule: one row per rendering
    torch.testing.assert_close(averaged.softmax(-1), rows.softmax(-1).view(-1, 3, 2).mean(1))


# Runs


@pytest.mark.parametrize("family", ["tiny_masked", "tiny_causal"])
def test_prompt_with_demonstrations_trains_end_to_end(family, data_dir, tmp_path, request):
    overrides = tiny_overrides(
        request.getfixturevalue(family),
        data_dir,
        "prompt-demo",
        "method.demonstrations.eval_sets=2",
    )
    results = train(
        compose_cfg(overrides + ["trainer.max_steps=2", "trainer.val_check_interval=1"], tmp_path)
    )
    assert results["method"] == "prompt-demo" and results["steps"] == 2
    assert 0.0 <= results["test"]["acc"] <= 1.0


def test_training_batches_get_fresh_demonstrations(data_dir, tiny_causal, tmp_path):
    dm, _ = build(compose_cfg(tiny_overrides(tiny_causal, data_dir, "prompt-demo"), tmp_path))
    dm.setup()
    renderings = {tuple(dm.encoded["train"][0][0].input_ids) for _ in range(20)}
    assert (
        len(renderings) > 1
    )  # 3 candidates per class: the same query is shown with other demonstrations


@pytest.mark.parametrize("family", ["tiny_masked", "tiny_causal"])
def test_in_context_learning_evaluates_without_training(family, data_dir, tmp_path, request):
    overrides = tiny_overrides(request.getfixturevalue(family), data_dir, "icl")
    results = train(compose_cfg(overrides, tmp_path))
    assert results["method"] == "icl" and results["steps"] == 0
    assert results["best_dev"] is not None and 0.0 <= results["test"]["acc"] <= 1.0


def test_similar_sampling_end_to_end_with_the_real_sentence_encoder(
    data_dir, tiny_causal, tmp_path
):
    overrides = tiny_overrides(
        tiny_causal,
        data_dir,
        "icl",
        "method.demonstrations.sampling=similar",
        "method.demonstrations.total=2",
    )
    assert train(compose_cfg(overrides, tmp_path))["steps"] == 0


def test_the_block_composes_with_method_zeroshot(data_dir, tiny_causal, tmp_path):
    overrides = tiny_overrides(tiny_causal, data_dir, "zeroshot", "+method.demonstrations.total=2")
    dm, _ = build(compose_cfg(overrides, tmp_path))
    assert (
        isinstance(dm, DemoDataModule) and dm.settings.total == 2 and dm.settings.per_class is None
    )


# Errors


@pytest.mark.parametrize(
    "method, extra, message",
    [
        (
            "finetune",
            "+method.demonstrations.per_class=1",
            "demonstrations show label words in the template's slot, which needs the LM head",
        ),
        (
            "prompt-demo",
            "method.demonstrations.per_class=0",
            r"demonstrations.per_class=0: give a whole number of at least 1",
        ),
        ("prompt-demo", "method.demonstrations.total=2", "set exactly one of per_class"),
        (
            "prompt-demo",
            "method.demonstrations.sampling=nearest",
            r"sampling='nearest' is unknown; use one of \['random', 'similar'\]",
        ),
        ("prompt-demo", "method.demonstrations.query=first", "the query must come last"),
        (
            "prompt-demo",
            "+method.demonstrations.shots=2",
            r"unknown demonstrations setting\(s\) \['shots'\]",
        ),
    ],
)
def test_bad_settings_give_one_clear_line(method, extra, message, data_dir, tiny_causal, tmp_path):
    with pytest.raises(FewtuneError, match=message) as err:
        build(compose_cfg(tiny_overrides(tiny_causal, data_dir, method, extra), tmp_path))
    assert "\n" not in str(err.value)


def test_more_demonstrations_than_the_training_set_allows(data_dir, tiny_causal, tmp_path):
    dm, _ = build(
        compose_cfg(
            tiny_overrides(
                tiny_causal, data_dir, "prompt-demo", "method.demonstrations.per_class=4"
            ),
            tmp_path,
        )
    )
    with pytest.raises(
        FewtuneError,
        match=r"per_class=4 needs 5 training examples of each class .* class 0 has 4; lower per_class or raise k",
    ):
        dm.setup()
