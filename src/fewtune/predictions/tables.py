"""What stored predictions add to ``python -m fewtune.table``: significance marks in table.md and
table.tex with the test named under the table, every pair in significance.csv, and a confusion
matrix per task and row (confusion/*.png). Runs without predictions leave the table as it was."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fewtune.jobs.atomic import write_file_atomic
from fewtune.predictions.confusion import write_confusion_matrices
from fewtune.predictions.significance import Significance, compare

SIGNIFICANCE_FILE = "significance.csv"


@dataclass
class TableExtras:
    significance: Significance | None = None
    written: list[str] = field(default_factory=list)  # file names relative to the table's folder

    def rows(self, text_rows: list[list[str]], table, style: str) -> list[list[str]]:
        """The text rows with their marks in ``style`` (markdown or latex)."""
        if self.significance is None:
            return text_rows
        return self.significance.marked_rows(text_rows, table.tasks, style)

    def note(self, note: str, style: str) -> str:
        """The note under the table, naming the test; latex keeps it one paragraph (a tabular cell)."""
        if self.significance is None:
            return note
        return ("\n\n" if style == "markdown" else " ").join(
            part for part in (note, self.significance.caption()) if part
        )


def significance_and_confusion(table, chosen: dict, out: Path, resamples: int) -> TableExtras:
    """``chosen``: the table's best-on-dev run per (method, model, k, task, seed)."""
    extras = TableExtras()
    if resamples > 0:
        extras.significance = compare(table, chosen, resamples)
    if extras.significance is not None:
        write_file_atomic(out / SIGNIFICANCE_FILE, extras.significance.csv())
        extras.written.append(SIGNIFICANCE_FILE)
    extras.written += [
        str(p.relative_to(out)) for p in write_confusion_matrices(table, chosen, out)
    ]
    return extras
