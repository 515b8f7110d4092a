"""Reading a user's data files strictly: every problem is one line naming the file and line.

What a lenient reader would do silently is refused here: bytes that are not UTF-8 (the line
they are on), a quote that is never closed (a CSV reader would swallow the rows after it into
one cell), and a row with more or fewer columns than the header or the first row (a comma or
tab inside unquoted text).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from fewtune.errors import FewtuneError

DELIMITERS = {"csv": ",", "tsv": "\t"}


def read_text(path: Path, encoding: str = "utf-8", keep_bom: bool = False) -> str:
    """The file's text (without a byte-order mark unless asked); bytes that do not decode name their line."""
    data = Path(path).read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        bad = data[err.start : err.end]
        raise FewtuneError(
            f"{path} line {line}: bytes {bad!r} are not {encoding.upper()}; save the file as UTF-8 "
            f"(e.g. iconv -f latin1 -t utf-8 {Path(path).name} > fixed.{Path(path).suffix.lstrip('.')})"
        ) from None
    return text if keep_bom else text.removeprefix("\ufeff")


def text_lines(path: Path) -> list[str]:
    """The file's lines as ``open(path, encoding="utf-8").readlines()`` gives them (a byte-order
    mark kept, line ends made "\\n"), after the strict decoding of ``read_text``."""
    return io.StringIO(read_text(path, keep_bom=True), newline=None).readlines()


def table_rows(
    text: str, path: Path, fmt: str, same_width: bool = True
) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of a CSV (quoted, as pandas writes it) or TSV (unquoted, GLUE) text.

    Blank lines are skipped. With ``same_width``, every row must have as many cells as the first
    one (the header, where there is one).
    """
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=DELIMITERS[fmt], quoting=quoting, strict=True
    )
    width, first_line = None, 0
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise FewtuneError(_quote_problem(path, start, reader.line_num, str(err))) from None
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if width is None:
            width, first_line = len(row), start
        elif same_width and len(row) != width:
            inside = (
                "an unquoted comma in the text? quote the text"
                if fmt == "csv"
                else "a tab inside the text? remove it"
            )
            raise FewtuneError(
                f"{path} line {start}: {len(row)} columns where line {first_line} has {width} ({inside})"
            )
        yield start, row


def _quote_problem(path: Path, start: int, end: int, message: str) -> str:
    if "end of data" in message:  # the reader met the end of the file inside quotes
        return (
            f"{path} line {start}: a quote opened in this row is never closed (the rest of the file would be "
            'read as one cell); close it, or double a quote inside quoted text ("")'
        )
    return (
        f"{path} line {start}: a quote in this row is not closed where it should be (the CSV reader stopped "
        f'at line {end}: {message}); close the quote, or double a quote inside quoted text ("")'
    )


def json_lines(text: str, path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a JSON Lines text; blank lines are skipped."""
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise FewtuneError(
                f"{path} line {line_no}: not a JSON object ({err.msg}); one object a line"
            ) from None
        if not isinstance(value, dict):
            raise FewtuneError(
                f"{path} line {line_no}: a JSON {type(value).__name__}, not an object; write one object a line"
            )
        yield line_no, value


def check_file(path: Path, fmt: str, header: bool = True) -> None:
    """Read a whole CSV, TSV or JSON Lines file once, strictly, for its problems; a file without
    examples is one too."""
    text = read_text(path)
    rows = json_lines(text, path) if fmt == "jsonl" else table_rows(text, path, fmt)
    if sum(1 for _ in rows) <= (header and fmt != "jsonl"):
        only = " (only its header)" if header and fmt != "jsonl" and text.strip() else ""
        raise FewtuneError(f"{path}: no examples in this file{only}; give it labelled rows")
