"""A PET run in ``python -m fewtune.table`` (conf/method/pet.yaml's ``table_rows``): one row for what its ``test`` holds, and for a
distilled run also the ensemble's row, read from metrics.json's ``ensemble``.

    method=pet method.distill=false  ->  "PET ensemble"                      (method key pet)
    method=pet (distill, the default) ->  "PET ensemble" and "PET distilled"  (pet, pet-distilled)

The ensemble's row has its own dev metric (``ensemble_dev``, for picking the best run of a grid)
and costs (all the pattern models: their parameters and storage together).
"""

from __future__ import annotations

from dataclasses import replace

from omegaconf import OmegaConf

METHOD = "pet"


def pet_rows(run) -> list:
    """``run`` (a table.Run) as the table's rows: itself, renamed, and for a distilled run the ensemble."""
    _, plus, peft = run.method.partition("+")
    method_cfg = OmegaConf.load(run.path / ".hydra" / "config.yaml").method
    title = method_cfg.get("title") or METHOD

    def named(kind: str, key: str) -> dict:
        return {
            "method": key + plus + peft,
            "method_title": run.method_title.replace(title, f"{title} {kind}", 1),
        }

    if not method_cfg.get("distill", True):
        return [replace(run, **named("ensemble", METHOD))]
    distilled = replace(run, **named("distilled", f"{METHOD}-distilled"))
    if run.status != "completed" or "ensemble" not in run.metrics:
        return [distilled]
    patterns = run.metrics.get("patterns") or []
    trainable = sum(p.get("trainable_params") or 0 for p in patterns)
    total = sum(p.get("total_params") or 0 for p in patterns)
    costs = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": round(trainable / total, 6) if total else None,
        "task_storage_bytes": sum(p.get("task_storage_bytes") or 0 for p in patterns),
    }
    ensemble = replace(
        run,
        **named("ensemble", METHOD),
        test=run.metrics["ensemble"][run.metric],
        dev=run.metrics.get("ensemble_dev"),
        trainable_params=trainable,
        predictions_prefix="ensemble-",  # predictions/ensemble-test.parquet (pet/predictions.py)
        metrics={
            **run.metrics,
            "test": run.metrics["ensemble"],
            "best_dev": run.metrics.get("ensemble_dev"),
            **costs,
        },
    )
    return [ensemble, distilled]
