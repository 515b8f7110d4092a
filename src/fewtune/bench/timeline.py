"""Per-step and per-batch wall times, each with the input shape it computed, and their summary.

A step's time is the interval from the end of the step before it (the first: from the start
of its own batch) to its own end, after a CUDA synchronisation: fetching and collating the
batch, moving it, every hook and the step itself, for fewtune and the tuned loop alike. The
first step (the packing probe, the optimizer's state, the first use of each kernel) is
reported apart from the steady state, the median of the others.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


def now(device: str) -> float:
    # CUDA runs asynchronously: without the sync a timer measures only the kernel launches.
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter()


@dataclass
class Timeline:
    device: str = "cpu"
    times: list[float] = field(default_factory=list)
    shapes: list[tuple[int, ...] | None] = field(default_factory=list)
    new: list[bool] = field(default_factory=list)  # the shape not met before in this process
    tokens: list[int] = field(default_factory=list)  # real (unpadded) tokens of each item
    wall_s: float | None = None  # the whole call (a trainer's set-up and teardown included)
    # each item from its own start (items of several timelines interleaved), not from the last stop
    each_from_start: bool = False
    _mark: float | None = None

    def start(self) -> None:
        """Before the first item (its batch fetched): the first interval's start."""
        if self._mark is None or self.each_from_start:
            self._mark = now(self.device)

    def stop(
        self, shape: tuple[int, ...] | None, seen: set | None = None, tokens: int | None = None
    ) -> None:
        """At the end of an item: its interval, its shape, whether ``seen`` had the shape, and
        its real tokens."""
        end = now(self.device)
        self.times.append(end - (self._mark if self._mark is not None else end))
        self.shapes.append(shape)
        if tokens is not None:
            self.tokens.append(int(tokens))
        if seen is not None:
            self.new.append(shape not in seen)
            seen.add(shape)
        self._mark = end

    def summary(self) -> dict:
        steady = self.times[1:] or self.times
        new_steady = [t for t, n in zip(self.times[1:], self.new[1:]) if n]
        seen_steady = [t for t, n in zip(self.times[1:], self.new[1:]) if not n]
        return {
            "count": len(self.times),
            "total_s": round(sum(self.times), 6),
            "wall_s": None if self.wall_s is None else round(self.wall_s, 6),
            "first_s": round(self.times[0], 6) if self.times else None,
            "steady_median_s": round(statistics.median(steady), 6) if steady else None,
            "steady_mean_s": round(statistics.fmean(steady), 6) if steady else None,
            # steps after the first whose shape was new to the process, and those already met
            "new_shape_median_s": round(statistics.median(new_steady), 6) if new_steady else None,
            "seen_shape_median_s": round(statistics.median(seen_steady), 6)
            if seen_steady
            else None,
            "distinct_shapes": len({s for s in self.shapes if s is not None}),
            "per_item_s": [round(t, 6) for t in self.times],
            "shapes": [list(s) if s is not None else None for s in self.shapes],
            "new_shape": self.new,
            "tokens": self.tokens,
        }
