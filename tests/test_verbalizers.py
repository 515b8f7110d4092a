"""Several label words per class and label words of several tokens (issue 5), on the tiny
backbones: the scores equal a hand computation with the full LM head."""

import json

import pytest
import torch

from conftest import compose_cfg, tiny_overrides
from fewtune.data.datamodule import Collator
from fewtune.data.encoding import PromptEncoder
from fewtune.data.prompts import Template
from fewtune.data.tasks import Example
from fewtune.data.verbalizers import Verbalizer
from fewtune.errors import FewtuneError
from fewtune.models.backbones import split_lm
from fewtune.models.prompt_head import PromptModule

TEMPLATES = {"masked": "{sentence} It was {mask} .", "causal": "{sentence} It was {mask}"}
SENTENCES = ["a fine film", "truly terrible mess , really"]
LONG = "supercalifragilistic"  # several tokens in both vocabularies


def setup(family, model_dir, mapping, **settings):
    """(encoder, module in eval mode, a padded batch of SENTENCES, the model)."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    causal = family == "causal"
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = (
        (AutoModelForCausalLM if causal else AutoModelForMaskedLM).from_pretrained(model_dir).eval()
    )
    verbalizer = Verbalizer(mapping, list(mapping), **settings)
    enc = PromptEncoder(tokenizer, Template(TEMPLATES[family]), verbalizer, 64, causal=causal)
    module = PromptModule(model, enc.label_words, metric="acc").eval()
    items = [enc.encode(Example({"sentence": s}, "0"), 0) for s in SENTENCES]
    return enc, module, Collator(tokenizer.pad_token_id or 0)(items), model


@pytest.fixture
def tiny(request):
    return request.getfixturevalue(f"tiny_{request.param}")


@pytest.mark.parametrize("tiny", ["masked", "causal"], indirect=True)
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_a_class_scores_the_mean_or_max_of_its_words_logits(tiny, reduce, request):
    family = request.node.callspec.params["tiny"]
    mapping = {"0": ["terrible", "awful", "bad"], "1": "great"}
    enc, module, batch, model = setup(family, tiny, mapping, reduce=reduce)
    with torch.no_grad():
        scores = module.label_logits(batch)
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    at_slot = full[torch.arange(2), batch["slot"]]
    words = enc.label_word_ids  # terrible, awful, bad, great
    assert len(words) == 4 and scores.shape == (2, 2)
    by_hand = at_slot[:, words[:3]].mean(-1) if reduce == "mean" else at_slot[:, words[:3]].amax(-1)
    torch.testing.assert_close(scores[:, 0], by_hand)
    torch.testing.assert_close(scores[:, 1], at_slot[:, words[3]])


@pytest.mark.parametrize("tiny", ["masked", "causal"], indirect=True)
def test_one_word_per_class_scores_exactly_as_before(tiny, request):
    family = request.node.callspec.params["tiny"]
    enc, module, batch, model = setup(family, tiny, {"0": "terrible", "1": "great"})
    assert batch["input_ids"][0].tolist().count(enc.tokenizer.mask_token_id or -1) == (
        family == "masked"
    )
    with torch.no_grad():
        scores = module.label_logits(batch)
        h = module.slot_hidden(batch)
        for head in split_lm(model)[1]:
            h = head(h)
    assert torch.equal(
        scores, h[:, torch.tensor(enc.label_word_ids)]
    )  # bit-identical: the slot-only path


def test_a_causal_multi_token_word_scores_the_sum_of_its_tokens_log_probs(tiny_causal):
    enc, module, batch, model = setup("causal", tiny_causal, {"0": LONG, "1": "great"})
    long_ids = enc.word_ids(LONG)
    assert len(long_ids) > 1 and enc.label_words.multi_token == "sum"  # the causal default
    with torch.no_grad():
        scores = module.label_logits(batch)
        for row, sentence in enumerate(SENTENCES):
            prompt = enc.encode(Example({"sentence": sentence}, "0"), 0).input_ids
            for label, word in enumerate((long_ids, enc.word_ids("great"))):
                logp = model(input_ids=torch.tensor([prompt + word])).logits[0].log_softmax(-1)
                by_hand = sum(logp[len(prompt) - 1 + j, t] for j, t in enumerate(word))
                torch.testing.assert_close(scores[row, label], by_hand)
    _, mean_module, _, _ = setup(
        "causal", tiny_causal, {"0": LONG, "1": "great"}, multi_token="mean"
    )
    with torch.no_grad():
        means = mean_module.label_logits(batch)
    torch.testing.assert_close(means[:, 0], scores[:, 0] / len(long_ids))
    torch.testing.assert_close(means[:, 1], scores[:, 1])


def test_a_masked_multi_token_word_gets_one_mask_per_token(tiny_masked):
    enc, module, batch, model = setup("masked", tiny_masked, {"0": LONG, "1": ["great", "good"]})
    long_ids = enc.word_ids(LONG)
    n = len(long_ids)
    assert n > 1 and enc.label_words.multi_token == "mean"  # PET's default for masked LMs
    tokens = enc.tokenizer.convert_ids_to_tokens(
        batch["input_ids"][0][: batch["attention_mask"][0].sum()]
    )
    assert tokens == ["[CLS]", "a", "fine", "film", "it", "was", *["[MASK]"] * n, ".", "[SEP]"]
    assert batch["slot"][0] == 6
    with torch.no_grad():
        scores = module.label_logits(batch)
        full = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits.log_softmax(-1)
    for row in range(2):
        at = batch["slot"][row]
        long_score = sum(full[row, at + j, t] for j, t in enumerate(long_ids)) / n
        # short words are read at the first mask only; the class is the mean of its two words
        short = (full[row, at, enc.word_id("great")] + full[row, at, enc.word_id("good")]) / 2
        torch.testing.assert_close(scores[row], torch.stack([long_score, short]))


def test_the_first_word_fills_a_demonstrations_slot(bert_tokenizer):
    from fewtune.data.demo_encoding import DemonstrationEncoder

    words = Verbalizer({"0": ["terrible", "awful"], "1": ["great", "good"]}, ["0", "1"])
    enc = PromptEncoder(bert_tokenizer, Template(TEMPLATES["masked"]), words, 64, causal=False)
    demo = DemonstrationEncoder(enc, 128, query_first=True)
    out = demo.encode(
        Example({"sentence": "fine"}, "1"), 1, [(Example({"sentence": "bad"}, "0"), 0)]
    )
    tokens = bert_tokenizer.convert_ids_to_tokens(out.input_ids)
    assert tokens == ["[CLS]", "fine", "it", "was", "[MASK]", ".", "[SEP]", "bad", "it", "was", "terrible", ".", "[SEP]"]  # fmt: skip
    assert demo.num_classes == 2
    long = Verbalizer({"0": LONG, "1": "great"}, ["0", "1"])
    enc = PromptEncoder(bert_tokenizer, Template(TEMPLATES["masked"]), long, 64, causal=False)
    with pytest.raises(
        FewtuneError, match=f"label word '{LONG}' is not a single token.*demonstrations needs"
    ):
        DemonstrationEncoder(enc, 128, query_first=True)


def test_calibration_works_on_the_class_scores(tiny_causal):
    from fewtune.scoring.calibration import content_free_probs

    enc, module, batch, _ = setup(
        "causal", tiny_causal, {"0": ["terrible", "awful"], "1": ["great", LONG]}
    )
    module.p_cf = content_free_probs(module, enc, ["sentence"])
    assert module.p_cf.shape == (2,)
    with torch.no_grad():
        probs = module.label_logits(batch).exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))


@pytest.mark.parametrize("family", ["masked", "causal"])
def test_prompt_training_with_several_words_per_class(family, data_dir, tmp_path, request):
    from fewtune.train import train

    words = [
        "task.verbalizer.0=[terrible,awful]",
        f"task.verbalizer.1=[great,{LONG}]",
        "+task.verbalizer_reduce=max",
    ]
    cfg = compose_cfg(
        tiny_overrides(request.getfixturevalue(f"tiny_{family}"), data_dir, "prompt", *words),
        tmp_path,
    )
    results = train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        saved["steps"] == 4 and 0 <= saved["test"]["acc"] <= 1 and results["test"] == saved["test"]
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.verbalizer.0=[]", "task 'sst2': label '0' has an empty list of words"),
        (
            "+task.verbalizer_reduce=median",
            r"verbalizer_reduce 'median' is unknown; use one of \['mean', 'max'\]",
        ),
        ("+task.multi_token=max", r"multi_token 'max' is unknown; use one of \['sum', 'mean'\]"),
        ("task.verbalizer.1=[great,'']", "label '1' has the word '', not text"),
    ],
)
def test_bad_verbalizer_settings_are_one_line_errors(
    override, message, data_dir, tiny_causal, tmp_path
):
    from fewtune.run.build import build

    cfg = compose_cfg(tiny_overrides(tiny_causal, data_dir, "prompt", override), tmp_path)
    with pytest.raises(FewtuneError, match=message) as err:
        build(cfg)
    assert "\n" not in str(err.value)


def test_early_exit_reduces_each_exits_words_too(data_dir, tiny_causal, tmp_path):
    from fewtune.run.build import build

    words = (
        "task.verbalizer.0=[terrible,awful]",
        "task.verbalizer.1=[great,good,fine]",
        "exit=all",
    )
    datamodule, module = build(
        compose_cfg(tiny_overrides(tiny_causal, data_dir, "prompt", *words), tmp_path)
    )
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()))
    module.eval()
    with torch.no_grad():
        per_exit = module.all_exit_logits(batch)
        full = module.full_logits(batch)
    assert all(logits.shape == (len(batch["slot"]), 2) for logits in per_exit.values())
    torch.testing.assert_close(
        per_exit[max(per_exit)], full
    )  # the last exit is the model's own head


def test_the_word_search_takes_the_best_dev_assignment():
    from fewtune.words.search import best_assignment

    # dev log-probs over a 5-token vocabulary; tokens 3 (class 0) and 1 (class 1) separate the classes
    log_probs = torch.tensor(
        [[0.0, 0.1, 0.9, 0.5, 0.0], [0.0, 0.9, 0.95, 0.1, 0.0], [0.0, 0.2, 0.7, 0.6, 0.0]]
    ).log()
    ids, acc = best_assignment(log_probs, [0, 1, 0], [[2, 3], [2, 1]], top_n=2)
    assert ids == [3, 1] and acc == 1.0
    with pytest.raises(FewtuneError, match="no two classes.*raise search.top_n"):
        best_assignment(
            log_probs, [0, 1, 0], [[2, 3], [2, 1]], top_n=1
        )  # both classes' best is token 2


def test_the_word_search_writes_its_words(data_dir, tiny_causal, tmp_path):
    from fewtune.search_words import main

    args = ["model=hf", f"model.path={tiny_causal}", "k=4", "seed=13", f"paths.data_dir={data_dir}"]
    main([*args, "search.top_k=3", "search.top_n=2", f"search.out={tmp_path}"])
    saved = json.loads((tmp_path / "sst2-4-13" / "metrics.json").read_text())
    assert set(saved["verbalizer"]) == {"0", "1"} and 0 <= saved["dev_acc"] <= 1
    for label, word in saved["verbalizer"].items():
        assert word in saved["candidates"][label][:2] and len(saved["candidates"][label]) == 3
