"""The verbalizer: label words, one or several per class (PET-style), of one or several tokens.

A task's verbalizer (``Verbalizer``) maps each label to a word or to a list of words:
``{"0": [terrible, awful, bad], "1": great}``. A class scores the mean (PET) or the max of its
words' scores (``verbalizer_reduce``). A word of several tokens is scored by the sum or the
mean of its tokens' log-probabilities (``multi_token``; default: sum for causal LMs, the
word's log-probability, and mean for masked LMs, as PET). ``LabelWords`` holds the token ids
a model scores, grouped by class; the scoring itself is in models/label_scores.py and
models/multi_token.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fewtune.errors import FewtuneError

REDUCES = ("mean", "max")
MULTI_TOKEN = ("sum", "mean")


def word_list(where: str, key: Any, value: Any) -> tuple[str, ...]:
    """A label's words: one string, or a non-empty list of strings."""
    words = (
        (value,)
        if isinstance(value, str)
        else tuple(value)
        if isinstance(value, (list, tuple))
        else None
    )
    if words is None:
        # YAML reads unquoted Yes/No/on/off as booleans: "No" would become the word "False".
        raise FewtuneError(
            f"{where}: the label word of '{key}' is {value!r}, not text; quote it in the YAML (e.g. \"No\")"
        )
    if not words:
        raise FewtuneError(
            f"{where}: label '{key}' has an empty list of words; give a word or a list of words"
        )
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise FewtuneError(
                f"{where}: label '{key}' has the word {word!r}, not text; write words as quoted strings (e.g. \"No\")"
            )
    return words


def check_settings(where: str, reduce: str, multi_token: str | None) -> None:
    if reduce not in REDUCES:
        raise FewtuneError(
            f"{where}: verbalizer_reduce '{reduce}' is unknown; use one of {list(REDUCES)}"
        )
    if multi_token is not None and multi_token not in MULTI_TOKEN:
        raise FewtuneError(
            f"{where}: multi_token '{multi_token}' is unknown; use one of {list(MULTI_TOKEN)} (or null: "
            "sum for causal LMs, mean for masked LMs)"
        )


class Verbalizer:
    """label -> word(s), in the task's label order: label i scores ``choices[i]`` (one or more
    words, LabelWords below); ``words[i]`` is its first word, the one a demonstration shows."""

    def __init__(
        self,
        mapping: Mapping[str, Any],
        labels: Iterable[str],
        reduce: str = "mean",
        multi_token: str | None = None,
    ):
        check_settings("verbalizer", reduce, multi_token)
        self.labels = tuple(labels)
        self.choices = tuple(
            word_list("verbalizer", label, mapping[label]) for label in self.labels
        )
        self.words = tuple(words[0] for words in self.choices)
        self.reduce = reduce
        self.multi_token = multi_token  # None: the family's default

    @classmethod
    def of_task(cls, task) -> Verbalizer:
        return cls(task.verbalizer, task.answer_keys, task.verbalizer_reduce, task.multi_token)

    def __repr__(self) -> str:
        shown = {
            label: words[0] if len(words) == 1 else list(words)
            for label, words in zip(self.labels, self.choices)
        }
        return f"Verbalizer({shown})"


@dataclass(frozen=True)
class LabelWords:
    """The token ids of every label word, grouped by class, and how they are scored."""

    tokens: tuple[tuple[tuple[int, ...], ...], ...]  # class -> its words -> token ids
    reduce: str = "mean"
    multi_token: str = "sum"
    causal: bool = True

    @classmethod
    def single(cls, ids) -> LabelWords:
        """One single-token word per class (the ids of the original verbalizers)."""
        return cls(tokens=tuple(((int(i),),) for i in ids))

    @property
    def num_classes(self) -> int:
        return len(self.tokens)

    @property
    def words(self) -> list[tuple[int, ...]]:
        """Every word's token ids, class after class."""
        return [word for words in self.tokens for word in words]

    @property
    def word_class(self) -> list[int]:
        """The class of each of ``words``."""
        return [c for c, words in enumerate(self.tokens) for _ in words]

    @property
    def one_word(self) -> bool:
        return all(len(words) == 1 for words in self.tokens)

    @property
    def single_token(self) -> bool:
        return all(len(word) == 1 for word in self.words)

    @property
    def max_tokens(self) -> int:
        return max(len(word) for word in self.words)

    @property
    def first_ids(self) -> list[int]:
        """The first token of every word: for single-token words, the ids the LM head is read at."""
        return [word[0] for word in self.words]

    @property
    def shown(self) -> list[tuple[int, ...]]:
        """Each class's first word: what a demonstration puts in its slot."""
        return [words[0] for words in self.tokens]
