"""Demonstrations: which training examples are shown with a query, and the settings that say so.

LM-BFF's prompt-based fine-tuning with demonstrations shows, with every query, one training
example per class rendered with the same template and its label word in the slot; GPT-3-style
in-context learning shows K examples drawn from the whole training set. ``DemoSettings`` is the
``method.demonstrations`` block; ``DemoSampler`` draws the examples for one query.

Sampling is ``random`` or ``similar``: LM-BFF ranks the candidates by the cosine similarity of
their sentence embeddings to the query's and draws from the top ``top_share`` (50%) of each class.
A training query is never its own demonstration.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from fewtune.errors import FewtuneError

SAMPLINGS = ("random", "similar")
AVERAGES = ("probs", "logits")
QUERY_PLACES = ("auto", "first", "last")


@dataclass(frozen=True)
class DemoSettings:
    per_class: int | None = 1  # demonstrations of each class (LM-BFF: 1) ...
    total: int | None = None  # ... or this many from the whole training set (GPT-3 style)
    sampling: str = "random"  # random | similar
    top_share: float = 0.5  # similar: draw from this share of each class, most similar first
    encoder: str = "minilm-l6"  # similar: a conf/model name, hub id or folder (mean-pooled)
    eval_sets: int = 16  # dev/test: demonstration sets per query, predictions averaged
    average: str = (
        "probs"  # average the label-word probabilities, or the raw logits (LM-BFF's code)
    )
    shuffle: bool = False  # per_class: shuffle the order (false: label order, as LM-BFF)
    query: str = (
        "auto"  # auto | first | last: auto puts it first for masked LMs, last for causal LMs
    )
    max_length: int | None = (
        None  # null: task.max_length x (1 + demonstrations), at most the model's
    )
    separator: str = "\n"  # causal LMs: text between the parts; masked LMs use the [SEP] token
    fixed: bool = False  # dev/test: the same eval_sets sets for every query (GPT-3, Zhao et al.)

    @property
    def count_per_class(self) -> bool:
        return self.per_class is not None

    def shown(self, num_classes: int) -> int:
        """How many demonstrations go with one query."""
        return self.per_class * num_classes if self.count_per_class else self.total

    def query_first(self, causal: bool) -> bool:
        if self.query == "auto":
            return not causal
        if causal and self.query == "first":
            raise FewtuneError(
                "demonstrations.query=first with a causal LM: the label word is the next token after the "
                "prompt, so the query must come last; use query=last or auto"
            )
        return self.query == "first"

    @classmethod
    def from_method(cls, method: Mapping[str, Any], causal: bool) -> DemoSettings | None:
        """The method's ``demonstrations`` block, checked for a model family; None when it has none."""
        block = method.get("demonstrations")
        if block is None:
            return None
        where = f"method '{method.get('name')}'"
        if method.get("head") != "lm":
            raise FewtuneError(
                f"{where}: demonstrations show label words in the template's slot, which needs the LM head; "
                "use method=prompt-demo, method=icl, or method=prompt/zeroshot with demonstrations"
            )
        block = dict(block)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise FewtuneError(
                f"{where}: unknown demonstrations setting(s) {unknown}; the settings are {sorted(known)}"
            )
        if block.get("total") is not None and "per_class" not in block:
            block["per_class"] = None  # `total` alone replaces the per-class default
        settings = cls(**block)
        settings.validate()
        settings.query_first(causal)
        return settings

    def validate(self) -> None:
        def positive(name: str, value) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FewtuneError(
                    f"demonstrations.{name}={value}: give a whole number of at least 1"
                )

        if (self.per_class is None) == (self.total is None):
            raise FewtuneError(
                "demonstrations: set exactly one of per_class (demonstrations of each class) and total "
                f"(from the whole training set); got per_class={self.per_class}, total={self.total}"
            )
        positive("per_class" if self.count_per_class else "total", self.shown(1))
        positive("eval_sets", self.eval_sets)
        if self.max_length is not None:
            positive("max_length", self.max_length)
        for name, value, allowed in (
            ("sampling", self.sampling, SAMPLINGS),
            ("average", self.average, AVERAGES),
            ("query", self.query, QUERY_PLACES),
        ):
            if value not in allowed:
                raise FewtuneError(
                    f"demonstrations.{name}={value!r} is unknown; use one of {list(allowed)}"
                )
        if not 0 < self.top_share <= 1:
            raise FewtuneError(f"demonstrations.top_share={self.top_share}: give a share in (0, 1]")
        if self.fixed and self.sampling == "similar":
            raise FewtuneError(
                "demonstrations.fixed=true shows every query the same sets, but sampling=similar picks them "
                "per query; use sampling=random with fixed=true"
            )


class DemoSampler:
    """Draws demonstrations (indices into the training set) for a query.

    ``classes[i]`` is training example i's class: its label index, or for a regression task
    whether its score is above the middle of the range (LM-BFF's median split).
    """

    def __init__(self, classes: Sequence[int], num_classes: int, settings: DemoSettings):
        self.classes = list(classes)
        self.num_classes = num_classes
        self.settings = settings
        self._check_sizes()

    def _check_sizes(self) -> None:
        s = self.settings
        if s.count_per_class:
            for c in range(self.num_classes):
                have = self.classes.count(c)
                # A training query of class c is not its own demonstration: c needs one spare example.
                if have < s.per_class + 1:
                    raise FewtuneError(
                        f"demonstrations.per_class={s.per_class} needs {s.per_class + 1} training examples of "
                        f"each class (a query is never its own demonstration), but class {c} has {have}; "
                        "lower per_class or raise k"
                    )
        elif len(self.classes) < s.total + 1:
            raise FewtuneError(
                f"demonstrations.total={s.total} needs {s.total + 1} training examples (a query is never its "
                f"own demonstration), but the training set has {len(self.classes)}; lower total or raise k"
            )

    def candidates(
        self, exclude: int | None = None, similarity: Sequence[float] | None = None
    ) -> list[list[int]]:
        """The pools to draw from: one per class (per_class) or one for all (total).

        ``exclude`` is the query's own index when it is a training example. With ``similarity``
        (the query's similarity to each training example), each pool keeps its top ``top_share``,
        most similar first, and never fewer than the draw needs.
        """
        s = self.settings
        order = [i for i in range(len(self.classes)) if i != exclude]
        if similarity is not None:
            order.sort(key=lambda i: -float(similarity[i]))
        if s.count_per_class:
            pools = [[i for i in order if self.classes[i] == c] for c in range(self.num_classes)]
        else:
            pools = [order]
        if similarity is None:
            return pools
        need = s.per_class if s.count_per_class else s.total
        return [pool[: max(need, int(len(pool) * s.top_share))] for pool in pools]

    def draw(self, pools: list[list[int]], rng: random.Random) -> list[int]:
        """One demonstration set: per class in label order (shuffled if asked), or ``total`` at random."""
        s = self.settings
        if not s.count_per_class:
            return rng.sample(pools[0], s.total)
        chosen = [i for pool in pools for i in rng.sample(pool, s.per_class)]
        if s.shuffle:
            rng.shuffle(chosen)
        return chosen


def demo_class(target: int | float, regression: bool) -> int:
    """The class a training example demonstrates: its label index, or high/low for a score in [0, 1]."""
    return int(target > 0.5) if regression else int(target)
