"""A sentence encoder for choosing similar demonstrations (LM-BFF uses Sentence-BERT).

The encoder is a conf/model name (``minilm-l6``: all-MiniLM-L6-v2, offline here), a hub id or a
local folder; a sentence's embedding is the mean of its last hidden states over its tokens, as
Sentence-BERT pools (data/similarity.py compares them by cosine).
"""

from __future__ import annotations

from pathlib import Path

import torch

from fewtune.data.similarity import Embed


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def load_encoder(
    name: str, cache_dir: str | Path, batch_size: int = 64, max_length: int = 256
) -> Embed:
    from omegaconf import OmegaConf
    from transformers import AutoModel

    from fewtune.config import CONF_DIR
    from fewtune.models import backbones

    conf = CONF_DIR / "model" / f"{name}.yaml"
    model_cfg = (
        OmegaConf.to_container(OmegaConf.load(conf))
        if conf.is_file()
        else {"name": name, "path": name}
    )
    model_cfg["family"] = "masked"  # any encoder: the family only matters for an LM head
    spec = backbones.resolve(model_cfg, cache_dir)
    tokenizer = backbones.load_tokenizer(spec)
    model = backbones.hub_call(AutoModel.from_pretrained, spec.path, spec.local).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            out.append(mean_pool(model(**batch).last_hidden_state, batch["attention_mask"]))
        return torch.cat(out) if out else torch.empty(0)

    return embed
