"""Templates: with the verbalizer (data/verbalizers.py), the two pieces that turn classification
into language modelling.

A template is readable text with placeholders: ``{sentence} It was {mask} .`` or
``{sentence1|drop_last} ? {mask} , {sentence2|lower_first}``. ``{mask}`` is the answer slot;
every other placeholder names a field of the task's examples, optionally followed by edits
(``|drop_last``, ``|lower_first``: LM-BFF's ``sent-_`` and ``sentl_`` for sentence pairs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fewtune.errors import FewtuneError

SLOT = "mask"
_PLACEHOLDER = re.compile(r"\{(\w+)((?:\|\w+)*)\}")

# LM-BFF's pair templates join two sentences into one: the first loses its final punctuation
# ("sent-_0", its last character), the second continues mid-sentence ("sentl_1").
FIELD_EDITS = {
    "drop_last": lambda text: text[:-1],
    "lower_first": lambda text: text[:1].lower() + text[1:],
}


@dataclass(frozen=True)
class Piece:
    """One part of a template: literal ``text``, a ``field`` of the example, or the slot.

    ``space`` records whether whitespace stood before the piece in the template: byte-level
    BPE vocabularies encode that space inside the next token (" great" is one token).
    """

    kind: str  # "text" | "field" | "slot"
    value: str = ""
    space: bool = False
    edits: tuple[str, ...] = ()  # FIELD_EDITS applied in order to a field's text

    def fill(self, fields: Mapping[str, str]) -> str:
        """A field piece's text for one example, after its edits."""
        text = fields[self.value]
        for edit in self.edits:
            text = FIELD_EDITS[edit](text)
        return text


class Template:
    def __init__(self, text: str):
        self.text = text
        self.pieces = self._parse(text)

    @staticmethod
    def _parse(text: str) -> tuple[Piece, ...]:
        pieces: list[Piece] = []
        pos = 0
        for match in _PLACEHOLDER.finditer(text):
            literal = text[pos : match.start()]
            space = literal[-1:].isspace() if literal else False
            literal = literal.rstrip()
            if literal.strip():
                pieces.append(Piece("text", literal.strip(), space=literal[:1].isspace()))
            name, edits = match.group(1), tuple(filter(None, match.group(2).split("|")))
            unknown = [e for e in edits if e not in FIELD_EDITS]
            if unknown:
                raise FewtuneError(
                    f"template '{text}': unknown edit(s) {unknown} in {match.group(0)}; "
                    f"the edits are {sorted(FIELD_EDITS)}"
                )
            kind = "slot" if name == SLOT else "field"
            if kind == "slot" and edits:
                raise FewtuneError(
                    f"template '{text}': the answer slot takes no edits; write {{{SLOT}}}"
                )
            pieces.append(Piece(kind, name, space=space, edits=edits))
            pos = match.end()
        tail = text[pos:]
        if tail.strip():
            pieces.append(Piece("text", tail.strip(), space=tail[:1].isspace()))
        if sum(p.kind == "slot" for p in pieces) != 1:
            raise FewtuneError(
                f"template '{text}' must have exactly one answer slot {{{SLOT}}}; "
                f"write e.g. '{{sentence}} It was {{{SLOT}}} .'"
            )
        return tuple(pieces)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(p.value for p in self.pieces if p.kind == "field")

    @property
    def slot(self) -> Piece:
        return next(p for p in self.pieces if p.kind == "slot")

    @property
    def ends_with_slot(self) -> bool:
        return self.pieces[-1].kind == "slot"

    def check(self, task_fields: Iterable[str], causal: bool, task: str = "") -> None:
        task_fields = tuple(task_fields)
        unknown = [f for f in self.fields if f not in task_fields]
        if unknown:
            raise FewtuneError(
                f"template '{self.text}' uses field(s) {unknown} that task '{task}' lacks; "
                f"its fields are {list(task_fields)}"
            )
        if causal and not self.ends_with_slot:
            raise FewtuneError(
                f"template '{self.text}' has text after {{{SLOT}}}: a causal LM predicts the label "
                f"word as the next token, so the slot must end the template"
            )

    def render(self, fields: Mapping[str, str], slot_text: str = "[MASK]") -> str:
        """The template as plain text (for display and debugging)."""
        out = []
        for p in self.pieces:
            value = (
                slot_text if p.kind == "slot" else p.fill(fields) if p.kind == "field" else p.value
            )
            out.append((" " if p.space and out else "") + value)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"
