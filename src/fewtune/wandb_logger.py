"""Lightning's WandbLogger, without the one argument that makes W&B print a warning on every run."""

from __future__ import annotations

from pytorch_lightning.loggers import WandbLogger


class QuietWandbLogger(WandbLogger):
    """Lightning passes ``anonymous=None`` to ``wandb.init``, which W&B 0.31 answers with
    "The anonymous setting has no effect" on every run: the key is left out instead."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
