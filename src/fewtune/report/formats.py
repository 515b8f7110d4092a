"""A table (header and rows of text) as Markdown, LaTeX and CSV."""

from __future__ import annotations

import csv
import io


def to_markdown(header: list[str], rows: list[list[str]], note: str = "") -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if note else "")


def to_latex(header: list[str], rows: list[list[str]], note: str = "") -> str:
    def esc(s: str) -> str:
        return s.replace("_", r"\_").replace("%", r"\%")

    lines = [r"\begin{tabular}{lll" + "c" * (len(header) - 3) + "}", r"\toprule"]
    lines.append(" & ".join(esc(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(esc(c) for c in row) + r" \\" for row in rows]
    lines.append(r"\bottomrule")
    if note:
        lines.append(rf"\multicolumn{{{len(header)}}}{{l}}{{\footnotesize {esc(note)}}} \\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    return buf.getvalue()
