"""A Lightning callback that makes each training step last a while, so that a test can signal a
SLURM job while it trains (after its first dev evaluation, before its last step)."""

import time

from pytorch_lightning.callbacks import Callback


class Pace(Callback):
    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)
