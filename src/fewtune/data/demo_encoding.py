"""Token ids of a query with its demonstrations.

Every part is the task's template: the query with its slot, each demonstration with its label
word in the slot. The parts are joined

- masked LMs (LM-BFF): ``[CLS] query [SEP] demo_1 [SEP] ... demo_n [SEP]`` (query first), the
  ``[SEP]`` after each part as LM-BFF's ``*sep+*``;
- causal LMs: ``demo_1 \\n ... demo_n \\n query``: the label word is scored as the next token
  after the prompt, so the query, which ends with the slot, must end the input.

``query=last`` puts the query last for masked LMs too (LM-BFF's in-context-learning baseline).
Truncation keeps the query whole: demonstrations lose text first (longest field first), then
whole demonstrations go, the farthest from the query first; only a query that alone exceeds
``max_length`` is cut, and it then comes without demonstrations.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from fewtune.data.encoding import Encoded, PromptEncoder, truncate_longest_first
from fewtune.data.tasks import Example
from fewtune.errors import FewtuneError


class DemonstrationEncoder:
    def __init__(
        self, prompt: PromptEncoder, max_length: int, query_first: bool, separator: str = "\n"
    ):
        # A query too long for any demonstration is encoded alone, cut to this max_length too.
        self.prompt = copy.copy(prompt)
        self.prompt.max_length = max_length
        self.max_length = max_length
        self.query_first = query_first
        # The truncation below counts one token per label word.
        prompt.require_single_tokens("demonstrations")
        self.num_classes = prompt.num_classes
        self.shown_ids = [
            word[0] for word in prompt.label_words.shown
        ]  # a class's first word fills its slot
        tokenizer = prompt.tokenizer
        if prompt.causal:
            self.joiner = tokenizer.encode(separator, add_special_tokens=False) if separator else []
        elif tokenizer.sep_token_id is not None:
            self.joiner = [tokenizer.sep_token_id]
        else:
            raise FewtuneError(
                "this tokenizer has no separator token to put between demonstrations"
            )
        pieces = prompt.template.pieces
        self.template_len = sum(map(len, prompt.texts.values()))
        self.num_fields = sum(p.kind == "field" for p in pieces)

    def _fields(self, example: Example) -> dict[int, list[int]]:
        pieces = self.prompt.template.pieces
        return {
            i: self.prompt._ids(p.fill(example.fields), p.space)
            for i, p in enumerate(pieces)
            if p.kind == "field"
        }

    def _part(self, fields: dict[int, list[int]], slot: list[int]) -> tuple[list[int], int]:
        """The template filled in, and where the slot's tokens start in it."""
        ids, at = [], -1
        for i, p in enumerate(self.prompt.template.pieces):
            if p.kind == "slot":
                at = len(ids)
            ids.extend(
                slot
                if p.kind == "slot"
                else fields[i]
                if p.kind == "field"
                else self.prompt.texts[i]
            )
        return ids, at

    def encode(
        self, example: Example, label: int | float, demos: Sequence[tuple[Example, int]] = ()
    ) -> Encoded:
        """``demos`` are (example, class index) pairs, in the order they are shown."""
        p = self.prompt
        query = self._fields(example)
        outer = len(p.prefix) + len(p.suffix)
        query_len = self.template_len + sum(map(len, query.values())) + (0 if p.causal else 1)
        if outer + query_len > self.max_length:
            return p.encode(
                example, label
            )  # no room for any demonstration: the query, cut as usual
        demos = list(demos)
        # One part costs its template, its label word and a separator, plus its text.
        demo_fixed = self.template_len + 1 + len(self.joiner)
        while (
            demos
            and outer + query_len + len(demos) * (demo_fixed + self.num_fields) > self.max_length
        ):
            demos.pop(-1 if self.query_first else 0)  # the farthest from the query goes first
        demo_fields = [self._fields(ex) for ex, _ in demos]
        flat = {(d, i): ids for d, fields in enumerate(demo_fields) for i, ids in fields.items()}
        truncate_longest_first(flat, self.max_length - outer - query_len - len(demos) * demo_fixed)

        query_ids, slot = self._part(query, [] if p.causal else [p.tokenizer.mask_token_id])
        parts = [
            self._part(fields, [self.shown_ids[c]])[0] for fields, (_, c) in zip(demo_fields, demos)
        ]
        return self._join(query_ids, slot, parts, label)

    def _join(
        self, query: list[int], slot: int, demos: list[list[int]], label: int | float
    ) -> Encoded:
        p = self.prompt
        ordered = [query, *demos] if self.query_first else [*demos, query]
        ids = list(p.prefix)
        for n, part in enumerate(ordered):
            if part is query:
                slot += len(ids)
            ids += part
            if n < len(ordered) - 1:
                ids += self.joiner
        ids += p.suffix
        if p.causal:
            slot = len(ids) - 1  # the last prompt token predicts the label word
        return Encoded(input_ids=ids, label=label, slot=slot)
