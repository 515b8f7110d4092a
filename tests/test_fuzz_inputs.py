"""Property-based tests over what users type: task configs, templates, label words and data rows.

Every generated input either works (a task is read, a template renders and encodes with a real
tokenizer, a file's rows are read) or fails with FewtuneError: never another exception type.
"""

from __future__ import annotations

import copy
import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import task_config
from fewtune.data.dataset_source import Records
from fewtune.data.encoding import PlainEncoder, PromptEncoder
from fewtune.data.originals import records_pool
from fewtune.data.prompts import Template
from fewtune.data.tasks import Example, SplitFile, TaskSpec, read_examples
from fewtune.data.verbalizers import Verbalizer
from fewtune.errors import FewtuneError

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Anything YAML (or a Hydra override) can give a key.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300), st.floats(allow_nan=True), st.text(max_size=12)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
TEMPLATE_TEXT = st.text(alphabet=string.ascii_letters[:6] + " {}|.?,_" + "é", max_size=30).map(
    lambda t: t.replace("ab", "{sentence}").replace("cd", "{mask}").replace("ef", "|drop_last")
)
WORDS = st.text(alphabet=string.ascii_letters + " éü🙂-'" + "\u200b", max_size=12)


REFUSED = object()


def works_or_fewtune_error(fn, *args, **kwargs):
    """fn's result, or REFUSED when it raised FewtuneError (one line); any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except FewtuneError as err:
        assert str(err) and "\n" not in str(err), repr(err)
        return REFUSED


def mutate(base: dict, data) -> dict:
    """A task config with some keys (top-level or one level down) replaced, deleted or added."""
    cfg = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 4))):
        key = data.draw(
            st.sampled_from([*sorted(cfg), "extra", "regression", "score_range", "text_fields"])
        )
        action = data.draw(st.sampled_from(["replace", "delete", "inner"]))
        if action == "delete":
            cfg.pop(key, None)
        elif action == "inner" and isinstance(cfg.get(key), dict) and cfg[key]:
            inner = data.draw(st.sampled_from(sorted(cfg[key], key=str)))
            cfg[key][inner] = data.draw(VALUES)
        else:
            cfg[key] = data.draw(VALUES)
    return cfg


@pytest.mark.parametrize("name", ["sst2", "mnli", "stsb", "cola"])
@FUZZ
@given(data=st.data())
def test_a_mutated_task_config_is_read_or_refused_in_one_line(name, data):
    cfg = mutate(task_config(name), data)
    spec = works_or_fewtune_error(TaskSpec.from_config, cfg)
    if spec is not REFUSED:  # what was accepted is usable
        assert len(spec.labels) >= 2 or spec.regression
        for family, text in spec.templates.items():
            Template(text).check(spec.text_fields, causal=family == "causal")


@FUZZ
@given(
    text=TEMPLATE_TEXT,
    sentence=st.text(max_size=40),
    causal=st.booleans(),
    max_length=st.integers(8, 40),
)
def test_a_template_renders_and_encodes_or_is_refused(
    text, sentence, causal, max_length, bert_tokenizer, bpe_tokenizer
):
    template = works_or_fewtune_error(Template, text)
    if (
        template is REFUSED
        or works_or_fewtune_error(template.check, ("sentence",), causal) is REFUSED
    ):
        return
    tokenizer = bpe_tokenizer if causal else bert_tokenizer
    verbalizer = Verbalizer({"0": "terrible", "1": "great"}, ("0", "1"))
    encoder = works_or_fewtune_error(
        PromptEncoder, tokenizer, template, verbalizer, max_length, causal
    )
    if encoder is REFUSED:
        return
    template.render({"sentence": sentence})
    encoded = works_or_fewtune_error(encoder.encode, Example({"sentence": sentence}, "1"), 1)
    if encoded is not REFUSED:
        assert len(encoded.input_ids) <= max_length
        assert 0 <= encoded.slot < len(encoded.input_ids)
        if not causal:
            assert encoded.input_ids[encoded.slot] == tokenizer.mask_token_id


@FUZZ
@given(
    words=st.lists(st.one_of(WORDS, st.lists(WORDS, max_size=3), SCALARS), min_size=2, max_size=2),
    causal=st.booleans(),
)
def test_label_words_encode_or_are_refused(words, causal, bert_tokenizer, bpe_tokenizer):
    cfg = {**task_config("sst2"), "verbalizer": {"0": words[0], "1": words[1]}}
    spec = works_or_fewtune_error(TaskSpec.from_config, cfg)
    if spec is REFUSED:
        return
    tokenizer = bpe_tokenizer if causal else bert_tokenizer
    template = Template(spec.templates["causal" if causal else "masked"])
    encoder = works_or_fewtune_error(
        PromptEncoder, tokenizer, template, Verbalizer.of_task(spec), 64, causal
    )
    if encoder is not REFUSED:
        assert all(ids for ids in encoder.label_words.words)
        assert tokenizer.unk_token_id not in {i for ids in encoder.label_words.words for i in ids}


CELL = st.text(alphabet=string.ascii_letters[:4] + ' ,\t"\n\r\\é01', max_size=10)


@FUZZ
@given(
    # a sentence, a label (mostly the task's), sometimes a cell too many
    rows=st.lists(
        st.tuples(
            CELL, st.one_of(st.sampled_from(["0", "1"]), CELL), st.lists(CELL, max_size=1)
        ).map(lambda r: [r[0], r[1], *r[2]]),
        max_size=6,
    ),
    fmt=st.sampled_from(["csv", "tsv"]),
    header=st.booleans(),
    junk=st.sampled_from([b"", b"\xe9", b"\xff\xfe", b"\x00"]),
)
def test_rows_of_any_shape_are_read_or_refused(rows, fmt, header, junk, tmp_path_factory):
    """Rows of arbitrary cells, joined as a careless writer would (no quoting), plus stray bytes."""
    path = tmp_path_factory.mktemp("rows") / f"train.{fmt}"
    delimiter = "," if fmt == "csv" else "\t"
    lines = (["sentence" + delimiter + "label"] if header else []) + [
        delimiter.join(row) for row in rows
    ]
    path.write_bytes("\n".join(lines).encode("utf-8") + junk)
    columns = {"sentence": "sentence", "label": "label"} if header else {"sentence": 0, "label": 1}
    spec = TaskSpec.from_config(
        {**task_config("sst2"), "format": fmt, "header": header, "columns": columns}
    )
    examples = works_or_fewtune_error(
        read_examples, spec, path, SplitFile(str(path), fmt, header, columns)
    )
    if examples is not REFUSED:  # nothing read wrongly: every label is the task's
        assert examples and all(ex.label in spec.labels for ex in examples)


@FUZZ
@given(
    objects=st.lists(
        st.one_of(VALUES, st.fixed_dictionaries({"sentence": VALUES, "label": VALUES})), max_size=5
    )
)
def test_json_lines_of_any_shape_are_read_or_refused(objects, tmp_path_factory):
    path = tmp_path_factory.mktemp("jsonl") / "test.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    columns = {"sentence": "sentence", "label": "label"}
    spec = TaskSpec.from_config(task_config("sst2"))
    examples = works_or_fewtune_error(
        read_examples, spec, path, SplitFile(str(path), "jsonl", False, columns)
    )
    if examples is not REFUSED:
        assert all(ex.label in spec.labels for ex in examples)


TEXT = (
    st.text(alphabet=string.ascii_letters[:5] + " ,\"'\\é\u00a0🙂", min_size=1, max_size=15)
    .map(lambda t: " ".join(t.split()))
    .filter(bool)
)


@FUZZ
@given(
    texts=st.lists(TEXT, min_size=2, max_size=6),
    fmt=st.sampled_from(
        [("csv", True), ("csv", False), ("tsv", True), ("tsv", False), ("jsonl", False)]
    ),
)
def test_what_the_sampler_writes_reads_back_the_same(texts, fmt, tmp_path_factory):
    """A dataset's records written as K-shot files in any task format are read back unchanged."""
    name, header = fmt
    columns = (
        {"sentence": "text", "label": "label"}
        if header or name == "jsonl"
        else {"label": 0, "sentence": 1}
    )
    cfg = {
        **task_config("sst2"),
        "format": name,
        "header": header,
        "columns": columns,
        "splits": None,
    }
    spec = TaskSpec.from_config(cfg)
    records = [{"sentence": text, "label": str(i % 2)} for i, text in enumerate(texts)]
    pool = records_pool(
        spec, Records(records, records[:1], [f"row {i}" for i in range(len(records))], "fuzz")
    )
    folder = tmp_path_factory.mktemp("written")
    (folder / f"train.{name}").write_text(pool.render(pool.rows), encoding="utf-8")
    (folder / f"test.{name}").write_bytes(pool.test)
    for split, expected in (("train", records), ("test", records[:1])):
        read = read_examples(spec, folder / f"{split}.{name}", spec.splits[split])
        assert [(ex.fields["sentence"], ex.label) for ex in read] == [
            (r["sentence"], r["label"]) for r in expected
        ]


@FUZZ
@given(first=st.text(max_size=30), second=st.text(max_size=30), max_length=st.integers(4, 64))
def test_the_classifier_encoder_takes_any_text(first, second, max_length, bert_tokenizer):
    encoder = PlainEncoder(bert_tokenizer, ("sentence1", "sentence2"), max_length)
    encoded = encoder.encode(Example({"sentence1": first, "sentence2": second}, "0"), 0)
    assert len(encoded.input_ids) <= max(max_length, 3)


def test_the_helper_tells_a_refusal_from_a_crash():
    assert works_or_fewtune_error(Template, "no slot here") is REFUSED
    assert (
        works_or_fewtune_error(TaskSpec.from_config, {**task_config("sst2"), "labels": "0,1"})
        is REFUSED
    )
    with pytest.raises(ZeroDivisionError):
        works_or_fewtune_error(lambda: 1 / 0)
