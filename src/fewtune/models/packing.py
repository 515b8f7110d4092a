"""Padding-free training batches: a batch's examples packed into one row.

A random K-shot batch of 8 is padded to its longest example, and most of its positions are
padding (SST-2 on SmolLM2: 190 tokens in 8 x 49 positions). Packed, the body computes the real
tokens alone: positions restart at 0 at each example, and attention stays within each. A
decoder gets the restarting ``position_ids`` alone (transformers builds the block-causal mask
from them); an encoder also gets a block-diagonal 4D mask. The sums are the same as the padded
batch's; only rounding differs.

Whether a model packs correctly is not assumed from its name: ``probe`` runs a few examples
both ways once, in float32, and packing is used only where the head's outputs agree. Models
whose bodies add positions (peft's soft prompts) or heads that pool in their own way fall back
to padded batches.

With a length ladder (data/lengths.py) the row is filled up to the ladder's next size with a
tail of padding tokens that is a sequence of its own (its positions restart at 0, its block is
its own), so packed rows take a few lengths and the examples compute exactly as without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fewtune.data.lengths import LengthLadder

HOW = ("positions", "block_mask")  # decoders, encoders


@dataclass(frozen=True)
class Packed:
    input_ids: torch.Tensor  # [1, tokens]
    position_ids: torch.Tensor  # [1, tokens], restarting at 0 at each example
    starts: torch.Tensor  # [batch]: where each example begins in the row
    lengths: torch.Tensor  # [batch]
    tail: int = 0  # padding after the examples, up to the length ladder's size

    def block_mask(self) -> torch.Tensor:
        """[1, 1, tokens, tokens], True where a token may attend: within its own example (the
        tail within itself)."""
        sizes = (
            torch.cat([self.lengths, self.lengths.new_tensor([self.tail])])
            if self.tail
            else self.lengths
        )
        example = torch.repeat_interleave(torch.arange(len(sizes), device=sizes.device), sizes)
        return (example[:, None] == example[None, :])[None, None]


def pack(batch: dict[str, torch.Tensor], lengths: LengthLadder | None = None) -> Packed:
    """The real tokens of a right-padded batch in one row (the collators pad on the right), filled
    up to the ladder's next size where there is one."""
    real = batch["attention_mask"].bool()
    sizes = real.sum(1)
    input_ids = batch["input_ids"][real].unsqueeze(0)
    position_ids = (real.cumsum(1) - 1)[real].unsqueeze(0)
    total = input_ids.size(1)
    tail = lengths.round_up(total) - total if lengths is not None else 0
    if tail:
        # Any token will do (the tail attends only to itself and is never read); its positions
        # restart at 0 (a new sequence for the decoders' packing rule) and stay below the longest
        # example's (within the model's position table).
        input_ids = torch.cat([input_ids, input_ids[:, :1].expand(1, tail)], 1)
        restart = torch.arange(tail, device=position_ids.device) % position_ids.max().add(1)
        position_ids = torch.cat([position_ids, restart[None]], 1)
    return Packed(input_ids, position_ids, starts=sizes.cumsum(0) - sizes, lengths=sizes, tail=tail)


def packed_hidden(body, packed: Packed, how: str) -> torch.Tensor:
    """The body's last hidden states of the packed row: [tokens, hidden]."""
    if how == "block_mask":
        return body(
            input_ids=packed.input_ids,
            position_ids=packed.position_ids,
            attention_mask=packed.block_mask(),
        )[0][0]
    # transformers reads packing from the positions only without a 2D mask and without a cache
    return body(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False)[0][0]


def probe(
    module,
    batch: dict[str, torch.Tensor],
    padded: Callable,
    packed: Callable,
    tolerance: float = 1e-5,
):
    """How ``module`` packs (one of ``HOW``), or None where neither way matches the padded batch.

    ``padded(rows)`` and ``packed(rows, how)`` are the head's per-example outputs (the slot's
    hidden state, the classifier's logits). Runs once, on a few examples of ``batch``, in
    float32 and eval mode (no dropout)."""
    rows = {key: batch[key][:3] for key in ("input_ids", "attention_mask", "slot")}
    if len(rows["input_ids"]) < 2:  # one example cannot show that attention stays within each
        return None
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), torch.autocast(rows["input_ids"].device.type, enabled=False):
            expected = padded(rows).float()
            for how in HOW:
                try:
                    got = packed(rows, how).float()
                except Exception:  # a body that does not take these inputs pads instead
                    continue
                # relative to the outputs' scale: a new head's logits are small, and so are their errors
                if (
                    got.shape == expected.shape
                    and (got - expected).abs().max() <= tolerance * expected.abs().max()
                ):
                    return how
        return None
    finally:
        module.train(was_training)
