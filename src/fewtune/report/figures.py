"""matplotlib for the report's figures: a backend that needs no display, and PNGs written atomically."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

from fewtune.jobs.atomic import write_file_atomic


def pyplot():
    """matplotlib.pyplot, on the Agg backend unless the caller already chose one (a notebook)."""
    import matplotlib

    if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # a script or the CLI: never open a window
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as a PNG (atomically) and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    write_file_atomic(path, buf.getvalue())
    return path
