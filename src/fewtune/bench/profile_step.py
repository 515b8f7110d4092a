"""Where a training step's time goes: forward, backward and optimizer, then torch.profiler's ops.

    python -m fewtune.bench.profile_step [overrides ...]     # default: experiment=cpu task=sst2 method=prompt

Builds the module as the benchmark does (bf16 autocast as ``trainer.precision`` says), runs
steps by hand on the training batches and prints mean seconds per phase (after 2 warm-up
steps) and the profiler's top operators for one step. On the GPU where
``trainer.accelerator`` picks it (``auto`` with CUDA, or ``gpu``); compare the phases with the
benchmark's Lightning-loop step time to see what the loop adds.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from fewtune.bench.peak import synchronize
    from fewtune.bench.worker import built
    from fewtune.hardware import cuda_selected

    overrides = ["experiment=cpu", "task=sst2", "method=prompt", "logger=none", *argv]
    cfg, datamodule, module = built({"overrides": overrides})
    device = "cuda" if cuda_selected(cfg.trainer.accelerator) else "cpu"
    module.to(device).train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optimizer.lr, fused=bool(cfg.optimizer.get("fused", False)))
    dtype = torch.bfloat16 if str(cfg.trainer.precision).startswith("bf16") else None
    batches = [{k: v.to(device) for k, v in batch.items()} for batch in datamodule.train_dataloader()]

    def step(batch) -> dict[str, float]:
        times = {}
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = module.loss(module.label_logits(batch), batch["labels"])
        synchronize(device)
        times["forward"], start = time.perf_counter() - start, time.perf_counter()
        loss.backward()
        synchronize(device)
        times["backward"], start = time.perf_counter() - start, time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        times["optimizer"] = time.perf_counter() - start
        return times

    runs = [step(batches[i % len(batches)]) for i in range(12)][2:]
    for phase in runs[0]:
        print(f"{phase:>10}: {sum(r[phase] for r in runs) / len(runs):.3f} s")
    batch = batches[0]
    print(f"batch: {tuple(batch['input_ids'].shape)} positions, {int(batch['attention_mask'].sum())} tokens")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        step(batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main(sys.argv[1:])
