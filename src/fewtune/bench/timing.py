"""A callback that stamps the wall-clock time of the first training step into a file.

The benchmark adds it to a real ``python -m fewtune.train`` command
(``+callbacks.first_step=...``) to measure start-up as a user meets it, then stops.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl


class FirstStepMarker(pl.Callback):
    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.path.exists():
            self.path.write_text(repr(time.time()))
        trainer.should_stop = True
