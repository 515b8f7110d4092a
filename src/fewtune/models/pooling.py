"""One vector per example from the body's token states, pooled as the backbone was trained to.

A sentence-transformers folder says how in its ``modules.json``: the Pooling module's
``config.json`` gives the mode, and a Normalize module after it scales the vector to length 1
(all-MiniLM-L6-v2: mean pooling, then Normalize). Other backbones have no such files: a masked
LM was trained with its first token ([CLS], <s>) as the sentence, a causal LM sees the whole
text only at its last token.

Used by SetFit's sentence encoder (fewtune/setfit/) and by method=finetune's ``method.pooling``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from fewtune.errors import FewtuneError

MODES = ("mean", "first", "last", "max")
# sentence-transformers' Pooling config flags -> our modes (mean_sqrt_len and weighted-mean are not offered)
ST_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "first",
    "pooling_mode_lasttoken": "last",
    "pooling_mode_max_tokens": "max",
}
ST_MODES = {
    "mean": "mean",
    "cls": "first",
    "lasttoken": "last",
    "max": "max",
}  # newer configs' pooling_mode


@dataclass(frozen=True)
class Pooling:
    mode: str  # one of MODES
    normalize: bool = (
        False  # scale each vector to unit length (a sentence-transformers Normalize module)
    )
    source: str = "setting"  # where it came from: "setting", "modules.json" or the family's default

    def __call__(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[batch, tokens, hidden] and the right-padded [batch, tokens] mask -> [batch, hidden]."""
        return self._finish(pool(hidden, mask, self.mode))

    def packed(
        self, hidden: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """The same from a packed row ([tokens, hidden]; models/packing.py): [batch, hidden]."""
        return self._finish(pool_packed(hidden, starts, lengths, self.mode))

    def _finish(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(pooled, p=2, dim=-1) if self.normalize else pooled


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    if mode == "mean":  # as sentence-transformers: padding left out, the count clamped away from 0
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    if mode == "first":
        return hidden[:, 0]
    if mode == "last":  # the rightmost real token (the collators pad on the right)
        rows = torch.arange(hidden.size(0), device=hidden.device)
        return hidden[rows, mask.squeeze(-1).sum(1).long() - 1]
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(1).values
    raise FewtuneError(f"pooling '{mode}' is unknown; use one of {list(MODES)}")


def pool_packed(
    hidden: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, mode: str
) -> torch.Tensor:
    if mode == "first":
        return hidden[starts]
    if mode == "last":
        return hidden[starts + lengths - 1]
    segments = torch.repeat_interleave(torch.arange(len(lengths), device=hidden.device), lengths)
    hidden = hidden[
        : segments.numel()
    ]  # not the filler that rounds the row up to the ladder's size
    if mode == "mean":
        sums = torch.zeros(len(lengths), hidden.size(-1), dtype=hidden.dtype, device=hidden.device)
        return sums.index_add(0, segments, hidden) / lengths.to(hidden.dtype).unsqueeze(-1)
    if mode == "max":
        init = torch.full(
            (len(lengths), hidden.size(-1)),
            torch.finfo(hidden.dtype).min,
            dtype=hidden.dtype,
            device=hidden.device,
        )
        return init.scatter_reduce(0, segments[:, None].expand_as(hidden), hidden, "amax")
    raise FewtuneError(f"pooling '{mode}' is unknown; use one of {list(MODES)}")


def from_sentence_transformers(folder: str | Path) -> Pooling | None:
    """The pooling a sentence-transformers folder declares, or None where it has no modules.json."""
    folder = Path(folder)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    types = [str(m.get("type", "")) for m in modules]
    poolers = [m for m in modules if str(m.get("type", "")).endswith(".Pooling")]
    if not poolers:
        raise FewtuneError(
            f"{modules_file} lists no Pooling module ({types}); set the pooling explicitly"
        )
    config = json.loads((folder / poolers[0].get("path", "") / "config.json").read_text())
    if isinstance(config.get("pooling_mode"), str):
        modes = [ST_MODES.get(config["pooling_mode"], config["pooling_mode"])]
    else:
        modes = [mode for flag, mode in ST_FLAGS.items() if config.get(flag)]
        others = [
            flag
            for flag, on in config.items()
            if flag.startswith("pooling_mode_") and on and flag not in ST_FLAGS
        ]
        modes += others
    if len(modes) != 1 or modes[0] not in MODES:
        raise FewtuneError(
            f"{folder}/{poolers[0].get('path', '')}/config.json pools by {modes}; fewtune pools by one of "
            f"{list(MODES)}: set the pooling explicitly"
        )
    return Pooling(
        modes[0], normalize=any(t.endswith(".Normalize") for t in types), source="modules.json"
    )


def backbone_pooling(path: str | Path, family: str) -> Pooling:
    """``auto``: the folder's sentence-transformers pooling, else the family's own token (masked:
    the first, causal: the last)."""
    declared = from_sentence_transformers(path) if Path(path).is_dir() else None
    if declared is not None:
        return declared
    return Pooling("first" if family == "masked" else "last", source=f"{family} default")


def resolve(setting: str, path: str | Path, family: str, normalize: bool | None = None) -> Pooling:
    """A pooling setting (``auto`` or one of MODES) for a backbone; ``normalize`` None: as declared."""
    if setting == "auto":
        chosen = backbone_pooling(path, family)
    elif setting in MODES:
        chosen = Pooling(setting)
    else:
        raise FewtuneError(
            f"method.pooling='{setting}' is unknown; use auto or one of {list(MODES)}"
        )
    if normalize is not None:
        chosen = Pooling(chosen.mode, bool(normalize), chosen.source)
    return chosen
