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


# Small multiples sized for a page: four panels a row, each about 2 inches, so that the PNG
# (dpi 120) is under 1,000 px wide and its 7-8 pt text still reads when shown at 800 px.
PANEL_COLUMNS = 4
PANEL_SIZE = (2.1, 1.9)  # inches per panel


def panel_grid(n: int, ncols: int = PANEL_COLUMNS, size: tuple[float, float] = PANEL_SIZE):
    """A figure with ``n`` panels in rows of ``ncols`` (the unused ones hidden): (fig, axes)."""
    plt = pyplot()
    ncols = max(1, min(n, ncols))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:n]


def shared_legend(fig, axes, ncol: int = 2, first: tuple[str, ...] = ()) -> None:
    """One legend under the panels, an entry per label from whichever panel has it."""
    legend = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels = sorted(legend, key=lambda label: label in first)  # the named entries last
    fig.tight_layout()
    fig.legend(
        [legend[label] for label in labels],
        labels,
        fontsize=7,
        loc="upper center",
        ncol=max(1, min(ncol, len(labels))),
        bbox_to_anchor=(0.5, 0.0),
        frameon=False,
    )
