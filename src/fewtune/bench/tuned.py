"""The tuned plain loop: the work fewtune does, written without Lightning.

The same module (``build(cfg)``: packing where the run packs, the length ladder, slot-only
scoring), the same batches (the data module's loaders), the same precision (autocast as
``trainer.precision``), the same optimizer and schedule (the run's fused AdamW and linear
decay), the same attention kernels (``sdpa_backends``). What it leaves out is Lightning: its
loop, hooks, logging and callbacks. fewtune / tuned is what the framework costs; fewtune /
naive (bench/baseline.py) is what a user gains.
"""

from __future__ import annotations

import torch

from fewtune.bench.precision import autocast
from fewtune.bench.timeline import Timeline, now
from fewtune.models.attention import kernels
from fewtune.models.shapes_met import ShapeLog


def to_device(batch: dict, device: str) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def batches_forever(loader):
    """The loader's batches epoch after epoch, as a step-counted trainer draws them."""
    while True:
        yield from loader


class TrainLoop:
    """The tuned loop's training steps, one at a time (``step``), on the data module's batches."""

    def __init__(self, cfg, module, datamodule, device: str, steps: int):
        self.cfg, self.module, self.device = cfg, module, device
        module.to(device).train()
        params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = module.optimizer_factory(params)
        self.scheduler = None
        if module.scheduler_factory is not None:
            self.scheduler = module.scheduler_factory(
                self.optimizer, num_training_steps=max(steps, 1)
            )
        self.shapes = ShapeLog()
        self.shapes.attach(module.model)
        self.shapes.phase = "train"
        self.batches = batches_forever(datamodule.train_dataloader())

    def step(self, timeline: Timeline, seen: set | None = None) -> None:
        module, device = self.module, self.device
        batch = next(self.batches)
        timeline.start()
        batch = to_device(batch, device)
        with kernels(self.cfg.get("sdpa_backends", "auto"), device, "train"):
            with autocast(self.cfg.trainer.precision, device):
                loss = module.loss(module.label_logits(batch), batch["labels"])
            loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        timeline.stop(self.shapes.last, seen, batch["attention_mask"].sum())

    def close(self) -> None:
        self.shapes.detach()


def train(cfg, module, datamodule, device: str, steps: int, seen: set | None = None) -> Timeline:
    """``steps`` optimizer steps; per-step times and shapes."""
    start = now(device)
    loop = TrainLoop(cfg, module, datamodule, device, steps)
    timeline = Timeline(device)
    try:
        for _ in range(steps):
            loop.step(timeline, seen)
    finally:
        loop.close()
    timeline.wall_s = now(device) - start
    return timeline


def evaluate(
    cfg, module, datamodule, device: str, seen: set | None = None
) -> tuple[torch.Tensor, Timeline]:
    """The test split's label logits in the data module's (length-sorted) order, per-batch times."""
    module.to(device).eval()
    shapes = ShapeLog()
    shapes.attach(module.model)
    shapes.phase = "eval"
    timeline = Timeline(device)
    logits = []
    start = now(device)
    try:
        with torch.inference_mode(), kernels(cfg.get("sdpa_backends", "auto"), device, "eval"):
            for batch in datamodule.test_dataloader():
                timeline.start()
                with autocast(cfg.trainer.precision, device):
                    logits.append(module.label_logits(to_device(batch, device)).float().cpu())
                timeline.stop(shapes.last, seen, batch["attention_mask"].sum())
    finally:
        shapes.detach()
    timeline.wall_s = now(device) - start
    return torch.cat(logits), timeline
