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


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from fewtune.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp(prefix="fewtune-bench-")
    return cfg


def built(spec: dict):
    import pytorch_lightning as pl

    from fewtune.run.build import build

    cfg = compose(spec["overrides"])
    pl.seed_everything(42)  # fewtune and the baseline get the same classifier-head init
    datamodule, module = build(cfg)
    datamodule.setup()
    if spec.get("limit"):
        datamodule.encoded["test"] = datamodule.encoded["test"][: spec["limit"]]
    return cfg, datamodule, module


def file_order_test_items(datamodule, limit: int | None):
    """The test split in file order, encoded as fewtune encodes it, and the length-sorted order
    fewtune evaluates in (a stable sort of the file order)."""
    task = datamodule.task
    examples = task.read_split(datamodule.folder, datamodule.sources["test"], datamodule.data_dir)
    items = [datamodule.encoder.encode(ex, task.target(ex.label)) for ex in examples]
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    if limit:
        order = order[:limit]
        keep = set(order)
        items_subset = [items[i] for i in sorted(keep)]
        position = {i: j for j, i in enumerate(sorted(keep))}
        return items_subset, [position[i] for i in order]
    return items, order


def label_word_ids(module):
    ids = getattr(module, "label_word_ids", None)
    return None if ids is None else ids.tolist()


def measure_eval(spec: dict) -> dict:
    import pytorch_lightning as pl
    import torch

    from fewtune.bench.peak import synchronize

    device = spec.get("device", "cpu")
    cfg, datamodule, module = built(spec)
    items, sorted_order = file_order_test_items(datamodule, spec.get("limit"))
    tokens = sum(len(it.input_ids) for it in items)
    if spec["impl"] == "fewtune":
        collected = []

        class Collect(pl.Callback):
            def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
                collected.append(outputs.float().cpu())

        trainer = bench_trainer(cfg, device, Collect())
        # As the baseline's timer: CUDA started and the weights on the device before it starts
        # (trainer.test would do both inside the timer; on a GPU they cost seconds).
        module.to(device)
        synchronize(device)
        start = time.perf_counter()
        trainer.test(module, datamodule=datamodule, verbose=False)
        synchronize(device)
        seconds = time.perf_counter() - start
        sorted_logits = torch.cat(collected)
        logits = torch.empty_like(sorted_logits)
        logits[torch.tensor(sorted_order)] = sorted_logits
    else:
        from fewtune.bench.baseline import evaluate

        model = module.model.float().to(device)
        synchronize(device)
        start = time.perf_counter()
        logits = evaluate(model, items, datamodule.collate.pad_id, label_word_ids(module), device=device)
        synchronize(device)
        seconds = time.perf_counter() - start
    return {
        "examples": len(items),
        "tokens": tokens,
        "seconds": seconds,
        "examples_per_s": len(items) / seconds,
        "tokens_per_s": tokens / seconds,
        "logits": logits.tolist(),
        "labels": [it.label for it in items],
        "flops_per_token": 2 * non_embedding_params(module.model),
    }


def non_embedding_params(model) -> int:
    embeddings = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embeddings


def measure_train(spec: dict) -> dict:
    import torch

    steps, warmup = spec["steps"], spec["warmup"]
    device = spec.get("device", "cpu")
    cfg, datamodule, module = built(spec)
    times, tokens = [], []
    if spec["impl"] == "fewtune":
        from fewtune.run.resources import StepTimer

        class TokenCountingStepTimer(StepTimer):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
                tokens.append(int(batch["attention_mask"].sum()))

        timer = TokenCountingStepTimer()
        trainer = bench_trainer(cfg, device, timer, max_steps=warmup + steps, limit_val_batches=0)
        trainer.fit(module, datamodule=datamodule)
        times = timer.times
    else:
        from fewtune.bench.baseline import train_step

        model = module.model.float().to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr)
        ids = label_word_ids(module)
        batches = iter(())
        while len(times) < warmup + steps:
            batch = next(batches, None)
            if batch is None:
                batches = iter(datamodule.train_dataloader())
                continue
            start = time.perf_counter()
            train_step(model, optimizer, batch, ids, device)  # its float(loss) waits for the GPU
            times.append(time.perf_counter() - start)
            tokens.append(int(batch["attention_mask"].sum()))
    seconds = sum(times[warmup:])
    return {
        "steps": steps,
        "seconds": seconds,
        "steps_per_s": steps / seconds,
        "tokens_per_s": sum(tokens[warmup:]) / seconds,
    }


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
        cls = AutoModelForCausalLM if spec["method"] == "prompt" else AutoModelForSequenceClassification
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


KINDS = {"eval": measure_eval, "train": measure_train, "load": measure_load, "startup": measure_baseline_startup}


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = KINDS[spec["kind"]](spec)
    from fewtune.run.resources import peak_memory_mb

    result.update(peak_memory_mb())  # peak_rss_mb, and peak_gpu_mb where a GPU was used
    print("BENCH-RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
