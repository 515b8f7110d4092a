"""Templates, verbalizers, rendering to exact tokens, truncation and the label-word checks."""

import pytest
import torch

from fewtune.data.encoding import PromptEncoder
from fewtune.data.prompts import Template
from fewtune.data.tasks import Example
from fewtune.data.verbalizers import Verbalizer
from fewtune.errors import FewtuneError

SST2 = Verbalizer({"0": "terrible", "1": "great"}, ["0", "1"])


def encoder(tokenizer, text, causal, max_length=64, verbalizer=SST2):
    return PromptEncoder(tokenizer, Template(text), verbalizer, max_length, causal=causal)


def test_template_pieces_keep_the_spaces_around_the_slot():
    t = Template("{sentence} It was {mask} .")
    assert [(p.kind, p.value, p.space) for p in t.pieces] == [
        ("field", "sentence", False),
        ("text", "It was", True),
        ("slot", "mask", True),
        ("text", ".", True),
    ]
    assert t.fields == ("sentence",)
    assert t.render({"sentence": "a fine film"}) == "a fine film It was [MASK] ."


@pytest.mark.parametrize("text", ["{sentence} It was .", "{mask} {sentence} {mask}"])
def test_template_needs_exactly_one_slot(text):
    with pytest.raises(FewtuneError, match="exactly one answer slot"):
        Template(text)


def test_template_field_the_task_lacks():
    with pytest.raises(FewtuneError, match=r"uses field\(s\) \['premise'\] that task 'sst2' lacks"):
        Template("{premise} ? {mask}").check(["sentence"], causal=False, task="sst2")


def test_causal_template_with_text_after_the_slot():
    with pytest.raises(FewtuneError, match="has text after {mask}"):
        Template("{sentence} It was {mask} .").check(["sentence"], causal=True)
    Template("{sentence} It was {mask}").check(["sentence"], causal=True)


def test_masked_template_renders_to_exact_wordpiece_tokens(bert_tokenizer):
    enc = encoder(bert_tokenizer, "{sentence} It was {mask} .", causal=False)
    out = enc.encode(Example({"sentence": "A fine film"}, "1"), label=1)
    tokens = bert_tokenizer.convert_ids_to_tokens(out.input_ids)
    assert tokens == ["[CLS]", "a", "fine", "film", "it", "was", "[MASK]", ".", "[SEP]"]
    assert out.slot == 6 and out.label == 1
    assert bert_tokenizer.convert_ids_to_tokens(enc.label_word_ids) == ["terrible", "great"]


def test_causal_template_ends_at_the_slot_and_label_words_keep_their_space(bpe_tokenizer):
    enc = encoder(bpe_tokenizer, "{sentence} It was {mask}", causal=True)
    out = enc.encode(Example({"sentence": "a fine film"}, "0"), label=0)
    tokens = bpe_tokenizer.convert_ids_to_tokens(out.input_ids)
    assert tokens == ["a", "Ġfine", "Ġfilm", "ĠIt", "Ġwas"]
    assert out.slot == len(tokens) - 1  # the last prompt token predicts the label word
    assert bpe_tokenizer.convert_ids_to_tokens(enc.label_word_ids) == ["Ġterrible", "Ġgreat"]


def test_slot_at_the_start_without_space(bpe_tokenizer):
    trec = Verbalizer({"0": "Description", "1": "Number"}, ["0", "1"])
    enc = PromptEncoder(bpe_tokenizer, Template("{sentence} Type:{mask}"), trec, 64, causal=True)
    assert bpe_tokenizer.convert_ids_to_tokens(enc.label_word_ids) == ["Description", "Number"]


def test_truncation_cuts_the_sentence_never_the_template(bert_tokenizer):
    enc = encoder(bert_tokenizer, "{sentence} It was {mask} .", causal=False, max_length=10)
    long = " ".join(["word"] * 50)
    out = enc.encode(Example({"sentence": long}, "1"), label=1)
    tokens = bert_tokenizer.convert_ids_to_tokens(out.input_ids)
    assert len(tokens) == 10
    assert tokens == ["[CLS]", "word", "word", "word", "word", "it", "was", "[MASK]", ".", "[SEP]"]
    assert tokens[out.slot] == "[MASK]"


def test_pair_truncation_is_longest_first(bert_tokenizer):
    verbalizer = Verbalizer({"0": "yes", "1": "no"}, ["0", "1"])
    enc = PromptEncoder(
        bert_tokenizer, Template("{s1} ? {mask} , {s2}"), verbalizer, 14, causal=False
    )
    out = enc.encode(Example({"s1": "a " * 20, "s2": "b b"}, "0"), label=0)
    tokens = bert_tokenizer.convert_ids_to_tokens(out.input_ids)
    # 14 = [CLS] + s1 + ? + [MASK] + , + s2 + [SEP]: s1 keeps 7 tokens, the short s2 stays whole.
    assert tokens == ["[CLS]"] + ["a"] * 7 + ["?", "[MASK]", ",", "b", "b", "[SEP]"]


def test_template_too_long_for_max_length(bert_tokenizer):
    enc = encoder(bert_tokenizer, "{sentence} It was {mask} .", causal=False, max_length=5)
    with pytest.raises(FewtuneError, match="raise task.max_length"):
        enc.encode(Example({"sentence": "fine"}, "1"), label=1)


def test_label_word_that_is_not_one_token(bpe_tokenizer):
    # Words of several tokens are scored (tests/test_verbalizers.py); methods that read one
    # position per word (early exit, demonstrations) refuse them with what the word splits into.
    bad = Verbalizer({"0": "terrible", "1": "supercalifragilistic"}, ["0", "1"])
    enc = encoder(bpe_tokenizer, "{sentence} It was {mask}", causal=True, verbalizer=bad)
    with pytest.raises(
        FewtuneError,
        match=r"label word 'supercalifragilistic' is not a single token.*splits into \[.*early exit needs",
    ):
        enc.require_single_tokens("early exit")


def test_pair_template_edits_join_two_sentences_as_lm_bff_does(bert_tokenizer):
    # LM-BFF's "*sent-_0*?*mask*,*+sentl_1*": the premise loses its final character, the
    # hypothesis its capital letter.
    template = Template("{sentence1|drop_last} ? {mask} , {sentence2|lower_first}")
    assert template.fields == ("sentence1", "sentence2")
    pair = {"sentence1": "A man is running.", "sentence2": "The man moves."}
    assert template.render(pair) == "A man is running ? [MASK] , the man moves."
    nli = Verbalizer({"e": "yes", "n": "no"}, ["e", "n"])
    out = encoder(bert_tokenizer, template.text, causal=False, verbalizer=nli).encode(
        Example(pair, "e"), 0
    )
    assert bert_tokenizer.convert_ids_to_tokens(out.input_ids) == [
        "[CLS]",
        "a",
        "man",
        "is",
        "running",
        "?",
        "[MASK]",
        ",",
        "the",
        "man",
        "moves",
        ".",
        "[SEP]",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "{sentence|upper} It was {mask} .",
            r"unknown edit\(s\) \['upper'\] in \{sentence\|upper\}; the edits are \['drop_last', 'lower_first'\]",
        ),
        ("{sentence} It was {mask|drop_last} .", "the answer slot takes no edits"),
    ],
)
def test_template_bad_edits(text, message):
    with pytest.raises(FewtuneError, match=message):
        Template(text)


@pytest.mark.parametrize("fixture", ["tiny_causal", "tiny_masked"])
def test_word_logits_equal_the_full_lm_head_at_those_words(fixture, request):
    # Llama's head is the output embedding alone: only the label words' rows are multiplied.
    # BERT's runs its transform and decoder whole. Both must give the full head's logits.
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from fewtune.models.backbones import split_lm
    from fewtune.models.prompt_head import word_logits

    cls = AutoModelForCausalLM if fixture == "tiny_causal" else AutoModelForMaskedLM
    model = cls.from_pretrained(request.getfixturevalue(fixture)).eval()
    hidden = torch.randn(3, model.config.hidden_size)
    ids = torch.tensor([7, 2, 11])
    with torch.no_grad():
        full = hidden
        for module in split_lm(model)[1]:
            full = module(full)
        torch.testing.assert_close(
            word_logits(model, hidden, ids), full[:, ids], rtol=1e-5, atol=1e-5
        )
