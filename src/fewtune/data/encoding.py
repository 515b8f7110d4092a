"""Token ids for the two heads.

``PromptEncoder`` renders a template piece by piece, so that truncation cuts only the
example's text (never the template's words or the slot) and the slot's position is known
exactly. ``PlainEncoder`` gives the classifier head the raw text (and pair), as standard
fine-tuning does.
"""

from __future__ import annotations

from dataclasses import dataclass

from fewtune.data.prompts import Template
from fewtune.data.tasks import Example
from fewtune.data.verbalizers import LabelWords, Verbalizer
from fewtune.errors import FewtuneError


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    label: int | float  # the label's index, or a regression task's score in [0, 1]
    slot: int = (
        0  # the position whose LM-head logits score the label words (masked: the first mask)
    )
    # With demonstrations: the training examples drawn to be shown (indices), which name the
    # set whose content-free probabilities calibrate this row (fewtune/scoring/calibration.py).
    demos: tuple[int, ...] = ()
    # The example's position in its split's file: evaluation sorts by length, and the stored
    # per-example predictions (fewtune/predictions/) name each example by this. -1: not from a file.
    index: int = -1


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text ([CLS] ... [SEP], <s> ... </s>, BOS ...)."""
    probe = "hello"
    bare = tokenizer.encode(probe, add_special_tokens=False)
    full = tokenizer.encode(probe, add_special_tokens=True)
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    return [], []


def marks_spaces_in_tokens(tokenizer) -> bool:
    """True for byte-level BPE (GPT-2, RoBERTa, Llama-3, SmolLM): ' great' and 'great' differ."""
    plain, spaced = tokenizer.tokenize("a"), tokenizer.tokenize(" a")
    return plain != spaced and not plain[0].startswith("\u2581")


class PromptEncoder:
    def __init__(
        self, tokenizer, template: Template, verbalizer: Verbalizer, max_length: int, causal: bool
    ):
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self.causal = causal
        self.spaces = marks_spaces_in_tokens(tokenizer)
        self.prefix, suffix = special_tokens(tokenizer)
        # A causal LM predicts the label word right after the prompt: nothing may follow it.
        self.suffix = [] if causal else suffix
        if not causal and tokenizer.mask_token_id is None:
            raise FewtuneError(
                "this tokenizer has no mask token, so it cannot fill a masked-LM template"
            )
        self.texts = {
            i: self._ids(p.value, p.space)
            for i, p in enumerate(template.pieces)
            if p.kind == "text"
        }
        self.verbalizer = verbalizer
        multi_token = verbalizer.multi_token or ("sum" if causal else "mean")
        tokens = tuple(
            tuple(tuple(self.word_ids(w)) for w in words) for words in verbalizer.choices
        )
        self.label_words = LabelWords(tokens, verbalizer.reduce, multi_token, causal)
        # Single-token words (the fast path): the ids the LM head is read at, every word in class order.
        self.label_word_ids = self.label_words.first_ids
        # A masked LM gets one mask per token of the longest word (PET); a causal LM appends the word.
        self.slot_tokens = 0 if causal else self.label_words.max_tokens

    @property
    def num_classes(self) -> int:
        return self.label_words.num_classes

    def _ids(self, text: str, space: bool) -> list[int]:
        return self.tokenizer.encode(
            (" " if space and self.spaces else "") + text, add_special_tokens=False
        )

    def word_ids(self, word: str) -> list[int]:
        """The vocabulary ids of a label word as it appears in the slot."""
        ids = self._ids(word, self.template.slot.space)
        if not ids:
            raise FewtuneError(
                f"label word {word!r} has no tokens in this model's vocabulary; choose another word"
            )
        unknown = self.tokenizer.unk_token_id
        if (
            unknown is not None and unknown in ids
        ):  # every word outside the vocabulary would score alike
            raise FewtuneError(
                f"label word {word!r} is not in this model's vocabulary (it becomes {self.tokenizer.unk_token}); "
                "choose a word the model knows"
            )
        return ids

    def word_id(self, word: str) -> int:
        """The single vocabulary id of a label word as it appears in the slot."""
        ids = self.word_ids(word)
        if len(ids) != 1:
            pieces = self.tokenizer.convert_ids_to_tokens(ids)
            raise FewtuneError(
                f"label word '{word}' is not a single token of this model's vocabulary: it splits "
                f"into {pieces}; choose a word that is one token"
            )
        return ids[0]

    def require_single_tokens(self, what: str) -> None:
        """For methods that read one position per word: every label word must be one token."""
        for words in self.verbalizer.choices:
            for word in words:
                ids = self.word_ids(word)
                if len(ids) != 1:
                    raise FewtuneError(
                        f"label word '{word}' is not a single token of this model's vocabulary (it splits into "
                        f"{self.tokenizer.convert_ids_to_tokens(ids)}) and {what} needs one-token label words; "
                        "choose a word that is one token"
                    )

    def encode(self, example: Example, label: int | float) -> Encoded:
        pieces = self.template.pieces
        fields = {
            i: self._ids(p.fill(example.fields), p.space)
            for i, p in enumerate(pieces)
            if p.kind == "field"
        }
        fixed = len(self.prefix) + len(self.suffix) + sum(map(len, self.texts.values()))
        fixed += self.slot_tokens
        budget = self.max_length - fixed
        if budget < len(fields):
            raise FewtuneError(
                f"template '{self.template.text}' needs {fixed} tokens without the example's text; "
                f"max_length={self.max_length} leaves no room: raise task.max_length"
            )
        truncate_longest_first(fields, budget)
        ids = list(self.prefix)
        slot = -1
        for i, p in enumerate(pieces):
            if p.kind == "slot":
                if self.causal:
                    slot = len(ids) - 1
                else:
                    slot = len(ids)  # the first mask
                    ids.extend([self.tokenizer.mask_token_id] * self.slot_tokens)
            else:
                ids.extend(fields[i] if p.kind == "field" else self.texts[i])
        ids.extend(self.suffix)
        if slot < 0:
            raise FewtuneError(
                f"template '{self.template.text}': a causal template needs text before {{mask}}"
            )
        return Encoded(input_ids=ids, label=label, slot=slot)


def truncate_longest_first(fields: dict[int, list[int]], budget: int) -> None:
    """Cut tokens from the end of the longest field until all fields fit the budget."""
    while sum(map(len, fields.values())) > budget:
        longest = max(fields, key=lambda i: len(fields[i]))
        fields[longest].pop()


class PlainEncoder:
    """Raw text (or text pair) with the tokenizer's own special tokens, for the classifier head."""

    def __init__(self, tokenizer, text_fields: tuple[str, ...], max_length: int):
        self.tokenizer = tokenizer
        self.text_fields = text_fields
        self.max_length = max_length

    def encode(self, example: Example, label: int | float) -> Encoded:
        texts = [example.fields[f] for f in self.text_fields]
        ids = self.tokenizer(*texts, truncation=True, max_length=self.max_length)["input_ids"]
        return Encoded(input_ids=ids, label=label, slot=len(ids) - 1)
