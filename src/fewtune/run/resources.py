"""What a run costs, for metrics.json and the loggers: step time and peak memory."""

from __future__ import annotations

import resource
import sys
import time

import pytorch_lightning as pl
import torch


class StepTimer(pl.Callback):
    """Wall time of each training step (forward, backward, optimizer step; not the dev evaluations).

    On a GPU the steps are timed with CUDA events read once training ends, not by synchronising
    at every step: a sync per step stops the host from queuing the next step while the GPU
    computes this one, a cost of its own at few-shot batch sizes. An event pair measures from
    when the GPU reached the step's start to when it finished its end, which is the step's wall
    time once the GPU or the host, whichever is slower, sets the pace."""

    def __init__(self):
        self._times: list[float] = []
        self._events: list[tuple] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            self._events.append((start, None))
        else:
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.device.type == "cuda":
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events[-1] = (self._events[-1][0], end)
        else:
            self._times.append(time.perf_counter() - self._start)

    @property
    def times(self) -> list[float]:
        """Seconds of each step so far (on a GPU: waits for the steps queued)."""
        if self._events:
            done = [(start, end) for start, end in self._events if end is not None]
            if done:
                done[-1][1].synchronize()
            self._times += [start.elapsed_time(end) / 1000 for start, end in done]
            self._events = [pair for pair in self._events if pair[1] is None]
        return self._times

    @property
    def mean_s(self) -> float | None:
        """The mean, without the first step (warm-up: allocations, kernel choice) when there are more."""
        times = self.times[1:] or self.times
        return round(sum(times) / len(times), 6) if times else None


def _gpu_used() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def reset_peak_gpu_memory() -> None:
    """A multirun's jobs share the process: each job's GPU peak starts here."""
    if _gpu_used():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> dict[str, float | None]:
    """Peak resident memory of the process (all jobs so far, in a multirun) and peak GPU memory
    allocated since ``reset_peak_gpu_memory`` (None when the run used no GPU), in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = (
        rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    )  # bytes on macOS, KiB on Linux
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if _gpu_used() else None
    return {
        "peak_rss_mb": round(rss_mb, 1),
        "peak_gpu_mb": None if gpu_mb is None else round(gpu_mb, 1),
    }
