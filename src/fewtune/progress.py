"""Progress on a terminal only: a rich bar there, nothing in logs, pipes, batch jobs or tests.

``track`` wraps a loop over many items (the table's runs); the Trainer's bars are in
fewtune.progress_bars.
"""

from __future__ import annotations

import sys
from typing import Iterable, Sequence, TypeVar

T = TypeVar("T")


def is_terminal(stream=None) -> bool:
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", None) and stream.isatty())


def track(items: Sequence[T], description: str, min_items: int = 20) -> Iterable[T]:
    """``items``, with a transient rich bar on stderr when it is a terminal and there are many."""
    if len(items) < min_items or not is_terminal(sys.stderr):
        return items
    from rich.console import Console
    from rich.progress import track as rich_track

    return rich_track(items, description=description, console=Console(stderr=True), transient=True)
