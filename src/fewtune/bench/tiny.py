"""Tiny backbones for the benchmark's CPU proxy of a GPU's fixed costs.

Two layers of hidden size 64 with the real models' tokenizers (SmolLM2's byte-level BPE, MiniLM's
WordPiece): the same token ids, batches, packing and ladder as the real runs, but compute so
small that a step's time is the host's: the training loop, hooks, logging, collation, packing.
On a GPU that host time is what a step costs at these batch sizes; here it shows on the CPU.
Built once from a config (random weights, seed 0) under the cache folder; no download.
"""

from __future__ import annotations

from pathlib import Path

TINY = {"tiny-llama": "smollm2-135m", "tiny-bert": "minilm-l6"}  # proxy -> the model it stands for


def tiny_model(name: str, cache_dir: str | Path) -> Path:
    """The folder of the tiny backbone ``name`` (built on first use)."""
    import torch
    from transformers import AutoTokenizer

    from fewtune.models import packaged

    folder = Path(cache_dir) / "bench-tiny" / name
    if (folder / "config.json").exists():
        return folder
    torch.manual_seed(0)
    size = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
    }
    if name == "tiny-llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(
            packaged.smollm2_path(cache_dir), local_files_only=True
        )
        config = LlamaConfig(
            vocab_size=len(tokenizer), num_key_value_heads=2, max_position_embeddings=2048,
            tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, **size,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    elif name == "tiny-bert":
        from transformers import BertConfig, BertForMaskedLM

        tokenizer = AutoTokenizer.from_pretrained(packaged.minilm_path(), local_files_only=True)
        model = BertForMaskedLM(
            BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **size)
        )
    else:
        raise ValueError(f"unknown tiny model {name!r}; one of {sorted(TINY)}")
    partial = folder.with_name(folder.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)  # whole or absent: a killed build leaves no half folder behind
    return folder


def tiny_overrides(name: str, cache_dir: str | Path) -> list[str]:
    """Hydra overrides that select the tiny backbone ``name`` for a run."""
    return ["model=hf", f"model.path={tiny_model(name, cache_dir)}", f"model.name={name}"]
