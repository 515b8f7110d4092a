"""The benchmark's cases: a composed config and the run's pieces built from it, and the test
split in the file's order, shared by the measurements (worker, two_sided, compare, gpu_check)."""

from __future__ import annotations

import tempfile


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from fewtune.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp(prefix="fewtune-bench-")
    return cfg


def built(spec: dict):
    import pytorch_lightning as pl

    from fewtune.run.build import build

    cfg = compose(spec["overrides"])
    pl.seed_everything(42)  # fewtune and the baseline get the same classifier-head init
    datamodule, module = build(cfg)
    datamodule.setup()
    if spec.get("limit"):
        datamodule.encoded["test"] = datamodule.encoded["test"][: spec["limit"]]
    return cfg, datamodule, module


def file_order_test_items(datamodule, limit: int | None):
    """The test split in file order, encoded as fewtune encodes it, and the length-sorted order
    fewtune evaluates in (a stable sort of the file order)."""
    task = datamodule.task
    examples = task.read_split(datamodule.folder, datamodule.sources["test"], datamodule.data_dir)
    items = [datamodule.encoder.encode(ex, task.target(ex.label)) for ex in examples]
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    if limit:
        order = order[:limit]
        keep = set(order)
        items_subset = [items[i] for i in sorted(keep)]
        position = {i: j for j, i in enumerate(sorted(keep))}
        return items_subset, [position[i] for i in order]
    return items, order


def label_word_ids(module):
    ids = getattr(module, "label_word_ids", None)
    return None if ids is None else ids.tolist()


def in_file_order(sorted_logits, sorted_order):
    import torch

    logits = torch.empty_like(sorted_logits)
    logits[torch.tensor(sorted_order)] = sorted_logits
    return logits


def non_embedding_params(model) -> int:
    embeddings = model.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in model.parameters()) - embeddings
