"""Which items of a split an evaluation cut short scores: ``run.scored.reached`` is what PET's
own prediction and contextual calibration use, and must be what Lightning's test loop takes."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from fewtune.run.scored import reached


class Seen(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.seen = []

    def test_step(self, batch, batch_idx):
        self.seen += batch.tolist()


@pytest.mark.parametrize("limit", [None, 1, 2, 0.5, 0.34, 1.0])
def test_reached_is_what_lightnings_test_loop_scores(limit):
    items, batch_size = list(range(23)), 4  # 6 batches, the last of 3
    module = Seen()
    trainer = pl.Trainer(
        accelerator="cpu",
        limit_test_batches=limit,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.test(module, DataLoader(torch.tensor(items), batch_size=batch_size), verbose=False)
    assert module.seen == reached(items, limit, batch_size)


def test_each_process_takes_every_nth_item_so_the_first_batches_lie_in_a_prefix():
    items = list(range(30))
    shares = [items[rank::3] for rank in range(3)]  # run/distributed.eval_sampler's split
    scored = {i for share in shares for i in share[: 2 * 4]}  # 2 batches of 4 each
    assert scored == set(reached(items, 2, 4, processes=3))
    assert reached(items, 2, 4, processes=None) == items  # processes not known: all
