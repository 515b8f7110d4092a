"""Where a training step's time goes: by hand (forward, backward, optimizer), then in Lightning.

    python -m fewtune.bench.profile_step [overrides ...]     # default: experiment=cpu task=sst2 method=prompt

Builds the module as the benchmark does (bf16 autocast as ``trainer.precision`` says), runs
steps by hand on the training batches and prints mean seconds per phase (after 2 warm-up
steps) and the profiler's top operators for one step. Then the same module, built afresh, in
the benchmark's Lightning trainer: its mean step time and the profiler's operators for one of
its steps, so what the loop adds to the hand-run step shows in one command (README: the GPU
run). On the GPU where ``trainer.accelerator`` picks it (``auto`` with CUDA, or ``gpu``).
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from fewtune.bench.peak import synchronize
    from fewtune.bench.worker import built
    from fewtune.run.hardware import cuda_selected

    overrides = ["experiment=cpu", "task=sst2", "method=prompt", "logger=none", *argv]
    cfg, datamodule, module = built({"overrides": overrides})
    device = "cuda" if cuda_selected(cfg.trainer.accelerator) else "cpu"
    module.to(device).train()
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=cfg.optimizer.lr, fused=bool(cfg.optimizer.get("fused", False))
    )
    dtype = torch.bfloat16 if str(cfg.trainer.precision).startswith("bf16") else None
    batches = [
        {k: v.to(device) for k, v in batch.items()} for batch in datamodule.train_dataloader()
    ]

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
    print(
        f"batch: {tuple(batch['input_ids'].shape)} positions, {int(batch['attention_mask'].sum())} tokens"
    )
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        step(batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    lightning_steps(overrides, device, activities)


def lightning_steps(
    overrides: list[str], device: str, activities, steps: int = 12, profiled: int = 3
) -> None:
    """The benchmark's Lightning trainer on a fresh module: mean step time after 2 warm-up steps,
    and the profiler's operators for step ``profiled`` (hooks, logging and the optimizer included)."""
    from torch.profiler import profile

    from fewtune.bench.worker import bench_trainer, built
    from fewtune.run.resources import StepTimer

    class ProfiledStepTimer(StepTimer):
        def __init__(self):
            super().__init__()
            self.profiler = profile(activities=activities)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if len(self.times) == profiled:
                self.profiler.__enter__()
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            if len(self.times) == profiled + 1:
                self.profiler.__exit__(None, None, None)

    cfg, datamodule, module = built({"overrides": overrides})
    timer = ProfiledStepTimer()
    bench_trainer(cfg, device, timer, max_steps=steps, limit_val_batches=0).fit(
        module, datamodule=datamodule
    )
    timed = timer.times[2:]
    print(
        f"lightning step: {sum(timed) / len(timed):.3f} s (mean of {len(timed)}; the phases above are by hand)"
    )
    print(timer.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main(sys.argv[1:])
