"""Where a training step's time goes: forward, backward and optimizer, then torch.profiler's ops.

    python -m fewtune.bench.profile_step [overrides ...]     # default: experiment=cpu task=sst2 method=prompt

Builds the module as the benchmark does (bf16 autocast as ``trainer.precision`` says), runs
steps by hand on the training batches and prints mean seconds per phase (after 2 warm-up
steps) and the profiler's top operators for one step.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from fewtune.bench.worker import built

    overrides = ["experiment=cpu", "task=sst2", "method=prompt", "logger=none", *argv]
    cfg, datamodule, module = built({"overrides": overrides})
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optimizer.lr, fused=bool(cfg.optimizer.get("fused", False)))
    dtype = torch.bfloat16 if str(cfg.trainer.precision).startswith("bf16") else None
    batches = list(datamodule.train_dataloader())

    def step(batch) -> dict[str, float]:
        times = {}
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = module.loss(module.label_logits(batch), batch["labels"])
        times["forward"], start = time.perf_counter() - start, time.perf_counter()
        loss.backward()
        times["backward"], start = time.perf_counter() - start, time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times["optimizer"] = time.perf_counter() - start
        return times

    runs = [step(batches[i % len(batches)]) for i in range(12)][2:]
    for phase in runs[0]:
        print(f"{phase:>10}: {sum(r[phase] for r in runs) / len(runs):.3f} s")
    batch = batches[0]
    print(f"batch: {tuple(batch['input_ids'].shape)} positions, {int(batch['attention_mask'].sum())} tokens")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main(sys.argv[1:])
