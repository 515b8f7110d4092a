"""One measurement in its own process: ``python -m fewtune.bench.worker '<json spec>'``.

Prints one JSON line with the figures. A spec names ``kind`` (eval | train | load | startup),
``impl`` (fewtune | baseline), the Hydra ``overrides`` that select model, method and data,
and ``steps`` / ``warmup`` / ``limit`` where they apply.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

from fewtune.bench.cases import (
    built,
    file_order_test_items,
    in_file_order,
    label_word_ids,
    non_embedding_params,
)


def bench_trainer(cfg, device: str, callback, **settings):
    """A Lightning trainer as the run's config has it (precision), without logging or saving."""
    import pytorch_lightning as pl

    return pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=cfg.trainer.precision,
        logger=False,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        **settings,
    )


def measure_eval(spec: dict) -> dict:
    """The test split's label logits (in file order) and per-batch times of one implementation:
    fewtune, the tuned plain loop, or the naive baseline."""
    device = spec.get("device", "cpu")
    cfg, datamodule, module = built(spec)
    items, sorted_order = file_order_test_items(datamodule, spec.get("limit"))
    if spec["impl"] == "baseline":
        from fewtune.bench.baseline import evaluate

        model = module.model.float().to(device)
        logits, timeline = evaluate(
            model, items, datamodule.collate.pad_id, label_word_ids(module), device=device
        )
    else:
        side = _side(spec["impl"])
        sorted_logits, timeline = side.evaluate(cfg, module, datamodule, device, set())
        logits = in_file_order(sorted_logits, sorted_order)
    return {**eval_figures(module, items, timeline.summary()), "logits": logits.tolist()}


def eval_figures(module, items, summary: dict) -> dict:
    """Rates over the whole split (its batches' times summed) beside the per-batch summary."""
    tokens = sum(len(it.input_ids) for it in items)
    seconds = sum(summary["per_item_s"])
    return {
        "examples": len(items),
        "tokens": tokens,
        "seconds": seconds,
        "examples_per_s": len(items) / seconds,
        "tokens_per_s": tokens / seconds,
        "labels": [it.label for it in items],
        "flops_per_token": 2 * non_embedding_params(module.model),
        "batches": summary,
    }


def _side(impl: str):
    from fewtune.bench import fewtune_side, tuned

    sides = {"fewtune": fewtune_side, "tuned": tuned}
    if impl not in sides:
        raise ValueError(f"unknown implementation {impl!r}: fewtune, tuned or baseline")
    return sides[impl]


def measure_train(spec: dict) -> dict:
    """``warmup`` + ``steps`` training steps of one implementation; rates over the last ``steps``."""
    import torch

    steps, warmup = spec["steps"], spec["warmup"]
    device = spec.get("device", "cpu")
    cfg, datamodule, module = built(spec)
    torch.manual_seed(cfg.seed)  # the same shuffled batches for every implementation
    if spec["impl"] == "baseline":
        from fewtune.bench.baseline import train_steps

        model = module.model.float().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr)
        timeline = train_steps(
            model, optimizer, datamodule, label_word_ids(module), warmup + steps, device
        )
    else:
        timeline = _side(spec["impl"]).train(cfg, module, datamodule, device, warmup + steps, set())
    return train_figures(timeline.summary(), steps, warmup)


def train_figures(summary: dict, steps: int, warmup: int) -> dict:
    timed = summary["per_item_s"][warmup:]
    tokens = [n for n in summary.get("tokens", [])][warmup:]
    seconds = sum(timed)
    return {
        "steps": steps,
        "seconds": seconds,
        "steps_per_s": len(timed) / seconds,
        **({"tokens_per_s": sum(tokens) / seconds} if tokens else {}),
        "step_times": summary,
    }


def measure_pair(spec: dict) -> dict:
    """fewtune and the tuned loop in this process, alternating (bench/two_sided.py)."""
    from fewtune.bench.two_sided import measure

    kind = spec["kind"].removeprefix("pair_")
    result = measure(spec, kind)
    result.update(result.pop("memory"))  # fewtune's peak, read before the tuned loop ran
    if kind == "eval":
        import torch

        _, datamodule, module = built(spec)
        items, sorted_order = file_order_test_items(datamodule, spec.get("limit"))

        result["logits"] = in_file_order(torch.tensor(result["logits"]), sorted_order).tolist()
        result["labels"] = [it.label for it in items]
        result["examples"] = len(items)
        result["tokens"] = sum(len(it.input_ids) for it in items)
        result["flops_per_token"] = 2 * non_embedding_params(module.model)
    return result


def measure_load(spec: dict) -> dict:
    """Backbone load times: cold (for smollm2: from the GGUF, converting) and from the cache."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from fewtune.models import packaged

    if spec["model"] == "smollm2-135m":
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            path = packaged.smollm2_path(cache)
            AutoModelForCausalLM.from_pretrained(path)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            AutoModelForCausalLM.from_pretrained(path)
            cached = time.perf_counter() - start
        source = packaged.package_dir(packaged.SMOLLM2_PACKAGE)
        start = time.perf_counter()
        AutoModelForCausalLM.from_pretrained(source, gguf_file=packaged.SMOLLM2_GGUF)
        baseline = time.perf_counter() - start  # a plain user loads the GGUF every time
        return {"cold_s": cold, "cached_s": cached, "baseline_s": baseline}
    start = time.perf_counter()
    AutoModelForSequenceClassification.from_pretrained(packaged.minilm_path())
    cached = time.perf_counter() - start
    return {"cold_s": cached, "cached_s": cached, "baseline_s": cached}


def measure_baseline_startup(spec: dict) -> dict:
    """A plain script's time to its first training step: imports, load, tokenize, step."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from fewtune.models import packaged

    if spec["model"] == "smollm2-135m":
        source = packaged.package_dir(packaged.SMOLLM2_PACKAGE)
        kwargs = {"gguf_file": packaged.SMOLLM2_GGUF}
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        cls = (
            AutoModelForCausalLM
            if spec["method"] == "prompt"
            else AutoModelForSequenceClassification
        )
        model = cls.from_pretrained(source, **kwargs)
    else:
        source = packaged.minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(source)
    device = spec.get("device", "cpu")
    model.to(device)
    batch = tokenizer(["a fine film"] * 8, return_tensors="pt").to(device)
    first_step = time.time()
    model(**batch).logits.float().sum().backward()
    torch.optim.AdamW(model.parameters()).step()
    return {"first_step_at": first_step}


KINDS = {
    "eval": measure_eval,
    "train": measure_train,
    "pair_eval": measure_pair,
    "pair_train": measure_pair,
    "load": measure_load,
    "startup": measure_baseline_startup,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    # host memory: fewtune and the tuned loop as a run has it, the naive loop as glibc has it
    if spec.get("impl") != "baseline":
        from fewtune.run.hardware import keep_freed_host_memory

        keep_freed_host_memory()
    result = KINDS[spec["kind"]](spec)
    from fewtune.run.resources import peak_memory_mb

    # peak_rss_mb (and peak_gpu_mb on a GPU); a pair's own reading, taken after fewtune alone, wins
    result = {**peak_memory_mb(), **result}
    print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
