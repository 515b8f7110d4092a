"""Early exit's trade-off as a figure: test metric against measured speed-up, one line per rule.

Each point is one threshold (labelled with it), mean over the runs with std as error bars; the
full model is the star at speed-up 1. Drawn with report/figures.py's Agg-backend helpers.
"""

from __future__ import annotations

from pathlib import Path

from fewtune.report.figures import pyplot, save_figure

RULE_TITLES = {
    "patience": "patience (PABEE)",
    "confidence": "confidence (DeeBERT, entropy)",
    "layerwise": "layerwise, no exit",
}


def exits_figure(summary: dict):
    plt = pyplot()
    metric = summary["metric"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    full = summary["full"][metric]
    ax.errorbar(
        [1.0],
        [100 * full["mean"]],
        yerr=[100 * full["std"]],
        marker="*",
        markersize=14,
        color="black",
        linestyle="none",
        capsize=3,
        label=f"full model ({summary['num_layers']} layers)",
    )
    for i, rule in enumerate(
        r for r in RULE_TITLES if any(s["rule"] == r for s in summary["settings"])
    ):
        points = sorted(
            (s for s in summary["settings"] if s["rule"] == rule),
            key=lambda s: s["speedup"]["mean"],
        )
        x = [s["speedup"]["mean"] for s in points]
        y = [100 * s[metric]["mean"] for s in points]
        ax.errorbar(
            x,
            y,
            xerr=[s["speedup"]["std"] for s in points],
            yerr=[100 * s[metric]["std"] for s in points],
            marker="o",
            capsize=3,
            color=f"C{i}",
            label=RULE_TITLES[rule],
        )
        for s, xi, yi in zip(points, x, y):
            if s["value"] is not None:
                ax.annotate(
                    f"{s['value']:g}",
                    (xi, yi),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    ax.set_xlabel("measured evaluation speed-up (full model = 1)")
    ax.set_ylabel(
        f"test {metric} (%)"
        + (f", mean ± std of {len(summary['runs'])} runs" if len(summary["runs"]) > 1 else "")
    )
    ax.set_title(
        f"{summary['task']} · {summary['model']} · {summary['method']}"
        + ("" if summary["peft"] == "none" else f" · {summary['peft']}"),
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def exits_plot(summary: dict, path: Path) -> Path:
    """``exits_figure`` as a PNG (written atomically)."""
    return save_figure(exits_figure(summary), path)
