"""A ladder of batch lengths: every batch is padded (or its packed row filled) up to one of a
few sizes, so that a run meets a few distinct shapes.

Per-shape costs are paid once per shape a process meets: cuDNN builds an execution plan,
``torch.compile`` recompiles, oneDNN and cuBLAS pick kernels. With every batch padded only to its
own longest example, a random training batch (or a packed row of its examples) has a new length
at nearly every step, and length-sorted evaluation batches one per batch. A geometric ladder
bounds the count whatever the data: ``per_octave`` sizes per doubling, each a multiple of
``multiple``; 4 per octave wastes at most ~19% of a batch's positions on padding (~9% on
average), 2 per octave ~41% (~20%).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fewtune.errors import FewtuneError

AUTO_PER_OCTAVE = 4


@dataclass(frozen=True)
class LengthLadder:
    per_octave: int = 4  # 0: no ladder, every batch its own longest length
    multiple: int = 8
    minimum: int = 16

    def __post_init__(self):
        if self.per_octave < 0 or self.multiple < 1 or self.minimum < 1:
            raise FewtuneError(
                f"shapes: per_octave={self.per_octave}, multiple={self.multiple}, minimum={self.minimum}; "
                "per_octave must be 0 (no ladder) or more, multiple and minimum 1 or more"
            )

    @classmethod
    def from_config(
        cls, shapes: Mapping[str, Any] | None, gpu: bool = False
    ) -> tuple[LengthLadder, LengthLadder]:
        """The (training, evaluation) ladders of a run's ``shapes`` setting (absent: the defaults).

        ``per_octave: auto`` is 4 for both on a GPU, where a new shape costs a backend the most;
        on the CPU 4 for training and none for evaluation: length-sorted evaluation batches
        hardly pad, and the ladder's padding made them ~10% slower there (docs/performance.md)."""
        shapes = dict(shapes or {})
        unknown = set(shapes) - {"per_octave", "multiple", "minimum"}
        if unknown:
            raise FewtuneError(
                f"shapes: unknown setting(s) {sorted(unknown)}; use per_octave, multiple, minimum"
            )
        per_octave = shapes.pop("per_octave", "auto")
        try:
            rest = {key: int(value) for key, value in shapes.items()}
            train = AUTO_PER_OCTAVE if per_octave == "auto" else int(per_octave)
        except (TypeError, ValueError):
            raise FewtuneError(
                f"shapes: {dict(shapes, per_octave=per_octave)} must be whole numbers (per_octave: or auto)"
            ) from None
        evaluation = (AUTO_PER_OCTAVE if gpu else 0) if per_octave == "auto" else train
        return cls(train, **rest), cls(evaluation, **rest)

    @property
    def enabled(self) -> bool:
        return self.per_octave > 0

    def round_up(self, length: int) -> int:
        """The smallest size of the ladder that holds ``length`` (``length`` itself without a ladder)."""
        if not self.enabled or length <= 0:
            return length
        return next(size for size in self.sizes(length) if size >= length)

    def sizes(self, up_to: int) -> list[int]:
        """The ladder's sizes up to the one that holds ``up_to``."""
        return (
            list(_sizes(self.per_octave, self.multiple, self.minimum, up_to))
            if self.enabled
            else []
        )


@lru_cache(maxsize=1024)  # once per (ladder, length): the collator asks at every batch
def _sizes(per_octave: int, multiple: int, minimum: int, up_to: int) -> tuple[int, ...]:
    out, step = [], 0
    while not out or out[-1] < up_to:
        size = multiple * math.ceil(minimum * 2 ** (step / per_octave) / multiple - 1e-9)
        if not out or size > out[-1]:
            out.append(size)
        step += 1
    return tuple(out)
