"""fewtune and the tuned plain loop on the same case, in one process: what the framework costs.

Each side gets a module built afresh (``build(cfg)``, the same seed) and the same batches. The
sides alternate over rounds (fewtune first, then the tuned loop first, ...), so that neither is
always the one that meets a shape or a kernel first, nor always the one a busy machine slows;
steady-state times pool the rounds. Peak memory is read after fewtune's first round, before the
tuned loop runs.
"""

from __future__ import annotations

import statistics

import torch

SIDES = ("fewtune", "tuned")


def order(rounds: int) -> list[str]:
    """fewtune, tuned, tuned, fewtune, fewtune, tuned, ...: each side first in alternate rounds."""
    out = []
    for r in range(rounds):
        out += list(SIDES) if r % 2 == 0 else list(reversed(SIDES))
    return out


def pooled(summaries: list[dict]) -> dict:
    """One side's rounds: every round's first step, the median of all steady steps."""
    steady = [t for s in summaries for t in s["per_item_s"][1:]]
    steady = steady or [t for s in summaries for t in s["per_item_s"]]  # a split of one batch
    first = summaries[0]
    return {
        "first_s": [s["first_s"] for s in summaries],
        "steady_median_s": round(statistics.median(steady), 6) if steady else None,
        "steady_mean_s": round(statistics.fmean(steady), 6) if steady else None,
        "total_s": [s["total_s"] for s in summaries],
        "distinct_shapes": first["distinct_shapes"],
        "rounds": summaries,
    }


def measure(spec: dict, kind: str) -> dict:
    """``kind`` 'train' (``spec['steps']`` steps a side a round) or 'eval' (the test split)."""
    from fewtune.bench import fewtune_side, tuned
    from fewtune.bench.cases import built
    from fewtune.run.resources import peak_memory_mb

    device = spec.get("device", "cpu")
    sides = {"fewtune": fewtune_side, "tuned": tuned}
    seen: set = set()  # shapes met in this process, by either side
    summaries: dict[str, list[dict]] = {side: [] for side in SIDES}
    logits: dict[str, torch.Tensor] = {}
    memory = None
    for side in order(spec.get("rounds", 2)):
        cfg, datamodule, module = built(spec)
        torch.manual_seed(cfg.seed)  # the same shuffled batches for both sides
        if kind == "train":
            timeline = sides[side].train(cfg, module, datamodule, device, spec["steps"], seen)
        else:
            out, timeline = sides[side].evaluate(cfg, module, datamodule, device, seen)
            logits.setdefault(side, out)
        summaries[side].append(timeline.summary())
        if memory is None:
            memory = peak_memory_mb()
    result = {side: pooled(summaries[side]) for side in SIDES}
    result["memory"] = memory
    result["steady_ratio"] = ratio(
        result["fewtune"]["steady_median_s"], result["tuned"]["steady_median_s"]
    )
    if kind == "eval":
        result["logits"] = logits["fewtune"].tolist()
        result["max_logit_difference"] = float((logits["fewtune"] - logits["tuned"]).abs().max())
    return result


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """fewtune's time over the tuned loop's (1.0: no cost; 1.25: a quarter slower)."""
    return round(ours / theirs, 4) if ours and theirs else None
