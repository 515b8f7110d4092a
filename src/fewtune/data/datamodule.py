"""The LightningDataModule: reads a task's K-shot split and serves padded batches."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from fewtune.data.encoding import Encoded, PlainEncoder, PromptEncoder
from fewtune.data.lengths import LengthLadder
from fewtune.data.tasks import SPLITS, TaskSpec, check_k_shot


class Collator:
    """Pads a list of ``Encoded`` to the longest in the batch (right padding), rounded up to the
    ladder's next size where there is one (data/lengths.py): a run meets a few shapes. Training
    and evaluation batches may have ladders of their own (``evaluation=True``)."""

    def __init__(
        self,
        pad_id: int,
        lengths: LengthLadder | None = None,
        eval_lengths: LengthLadder | None = None,
    ):
        self.pad_id = pad_id
        self.lengths = lengths
        self.eval_lengths = eval_lengths

    def __call__(self, items: list[Encoded], evaluation: bool = False) -> dict[str, torch.Tensor]:
        width = max(len(it.input_ids) for it in items)
        ladder = self.eval_lengths if evaluation else self.lengths
        if ladder is not None:
            width = ladder.round_up(width)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, it in enumerate(items):
            ids[row, : len(it.input_ids)] = torch.tensor(it.input_ids)
            mask[row, : len(it.input_ids)] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.tensor([it.label for it in items]),
            "slot": torch.tensor([it.slot for it in items]),
            "index": torch.tensor([it.index for it in items]),
        }


class FewShotDataModule(pl.LightningDataModule):
    def __init__(
        self,
        task: TaskSpec,
        encoder: PromptEncoder | PlainEncoder,
        pad_id: int,
        data_dir: str | Path,
        k: int,
        data_seed: int,
        batch_size: int = 8,
        eval_batch_size: int = 32,
        test_split: str = "test",
        lengths: LengthLadder | None = None,
        eval_lengths: LengthLadder | None = None,
    ):
        super().__init__()
        self.task = task
        self.encoder = encoder
        self.collate = Collator(pad_id, lengths, eval_lengths)
        self.data_dir = data_dir
        self.k = k
        self.data_seed = data_seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.encoded: dict[str, list[Encoded]] = {}
        # The split each phase reads: the test phase may read another split when the test file
        # is missing (MNLI-mismatched, QQP here) and the user asks for it with test_split=dev.
        self.sources = {"train": "train", "dev": "dev", "test": test_split}
        self.folder = task.check_files(
            data_dir, k, data_seed, tuple(dict.fromkeys(self.sources.values()))
        )
        # A phase's examples given instead of read (fewtune.predict: the user's texts as the test split).
        self.supplied: dict[str, list] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.encoded:
            return
        for split in SPLITS:
            examples = self.read(split)
            encoded = [
                replace(self.encoder.encode(ex, self.task.target(ex.label)), index=i)
                for i, ex in enumerate(examples)
            ]
            if split != "train":
                # Evaluation order does not matter: sorting by length makes padding minimal.
                encoded.sort(key=lambda e: len(e.input_ids))
            self.encoded[split] = encoded

    def read(self, split: str) -> list:
        """The examples of a phase's split, with K per class checked in train and dev."""
        if split in self.supplied:
            return self.supplied[split]
        examples = self.task.read_split(self.folder, self.sources[split], self.data_dir)
        if split != "test":
            check_k_shot(self.task, examples, self.k, split)
        return examples

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.encoded["train"], batch_size=self.batch_size, shuffle=True, collate_fn=self.collate
        )

    def _eval_loader(self, split: str) -> DataLoader:
        from fewtune.run.distributed import eval_sampler

        data = self.encoded[split]
        # Under DDP each process gets its share of the split, no example twice (the metric is exact).
        sampler = eval_sampler(self.trainer, data)
        collate = partial(self.collate, evaluation=True)
        return DataLoader(
            data, batch_size=self.eval_batch_size, sampler=sampler, collate_fn=collate
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("dev")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
