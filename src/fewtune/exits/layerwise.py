"""Running a transformer body one layer at a time, on a batch whose rows can be dropped.

Early exit needs the hidden states after chosen layers, and at inference it stops computing
for the examples that have exited. transformers' bodies run all layers in one ``forward``, so
``LayerRunner`` calls their pieces itself, as their ``forward`` does (transformers 5.x):

- BERT family (``BertModel``): embeddings, then each ``BertLayer`` with the bidirectional mask
  from ``create_bidirectional_mask``; no final norm (each layer ends with its LayerNorm).
- Llama family (``LlamaModel``): token embeddings, the rotary position embeddings of positions
  0..T-1 (as ``LlamaModel`` computes them without a cache), each decoder layer with the mask from
  ``create_causal_mask``; ``model.norm`` is the final norm, which the heads apply themselves.

After rows are dropped the attention mask is rebuilt from the kept rows' padding mask with the
same function, so the remaining rows see exactly what the full batch would have given them.
Other architectures get a FewtuneError.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from fewtune.errors import FewtuneError

BERT_TYPES = ("bert",)
LLAMA_TYPES = ("llama",)


@dataclass
class State:
    hidden: torch.Tensor  # [rows, T, H] after the layers run so far
    padding: torch.Tensor  # [rows, T] the 2-D attention mask (1 = token)
    mask: (
        object  # what the layers take as attention_mask (a tensor, or None where it is not needed)
    )
    rotary: tuple | None = None  # Llama's (cos, sin) of positions 0..T-1: the same for every row


def family(body: nn.Module) -> str:
    """'bert' or 'llama': the families LayerRunner knows; a FewtuneError for any other body."""
    config = getattr(body, "config", None)
    model_type = getattr(config, "model_type", type(body).__name__)
    if model_type in BERT_TYPES and hasattr(body, "encoder") and not config.is_decoder:
        return "bert"
    if model_type in LLAMA_TYPES and hasattr(body, "layers") and hasattr(body, "norm"):
        return "llama"
    raise FewtuneError(
        f"exit: early exit runs the layers itself and supports BERT- and Llama-family backbones "
        f"(model types {list(BERT_TYPES + LLAMA_TYPES)}); this model is '{model_type}' ({type(body).__name__}); use exit=none"
    )


class LayerRunner:
    def __init__(self, body: nn.Module):
        self.kind = family(body)
        self.body = body
        self.layers = body.encoder.layer if self.kind == "bert" else body.layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def final_norm(self) -> nn.Module | None:
        """The norm the body applies after its last layer (Llama's ``model.norm``), or None."""
        return self.body.norm if self.kind == "llama" else None

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> State:
        if self.kind == "bert":
            hidden = self.body.embeddings(input_ids=input_ids)
            return State(hidden, attention_mask, self._mask(hidden, attention_mask))
        hidden = self.body.embed_tokens(input_ids)
        rotary = self.body.rotary_emb(hidden, position_ids=self._positions(hidden))
        return State(hidden, attention_mask, self._mask(hidden, attention_mask), rotary)

    def step(self, index: int, state: State) -> State:
        """Run layer ``index`` (0-based) on the state's rows."""
        layer = self.layers[index]
        if self.kind == "bert":
            out = layer(state.hidden, state.mask)
        else:
            out = layer(
                state.hidden,
                attention_mask=state.mask,
                position_embeddings=state.rotary,
                position_ids=self._positions(state.hidden),
            )
        return replace(state, hidden=out[0] if isinstance(out, tuple) else out)

    def keep(self, state: State, rows: torch.Tensor) -> State:
        """Only the rows where ``rows`` (bool) is true go on."""
        hidden, padding = state.hidden[rows], state.padding[rows]
        return State(hidden, padding, self._mask(hidden, padding), state.rotary)

    @staticmethod
    def _positions(hidden: torch.Tensor) -> torch.Tensor:
        # LlamaModel without a cache: positions 0..T-1 for every row (right padding keeps them true).
        return torch.arange(hidden.size(1), device=hidden.device).unsqueeze(0)

    def _mask(self, hidden: torch.Tensor, padding: torch.Tensor):
        from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

        config = self.body.config
        if self.kind == "bert":
            return create_bidirectional_mask(
                config=config, inputs_embeds=hidden, attention_mask=padding
            )
        return create_causal_mask(
            config=config,
            inputs_embeds=hidden,
            attention_mask=padding,
            cache=None,
            position_ids=self._positions(hidden),
        )
