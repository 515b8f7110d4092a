"""Write-then-rename: a reader (the table, a resumed job, a user) sees the old file or the new
one, never half of one, even when the writer is killed mid-write.

``replaced(path)`` hands out a temporary file beside ``path`` for any writer (json, torch.save,
safetensors) and renames it over ``path`` once the writer is done; on an error it is deleted.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def replaced(path: str | Path) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to; it replaces ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make shared data and results private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_file_atomic(path: str | Path, data: str | bytes) -> None:
    """Write a whole file (text as UTF-8, newlines kept as given), on disk before it is renamed
    into place. Large checkpoints skip the fsync (``replaced`` alone): after a power loss an
    unreadable one only means starting that job afresh."""
    with replaced(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())  # on disk before the rename makes it visible


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_file_atomic(path, json.dumps(data, indent=2, sort_keys=True))
