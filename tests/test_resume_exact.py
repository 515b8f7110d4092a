"""A resumed job computes what an uninterrupted one does: the random state (dropout, batch order)
travels in checkpoints/last.ckpt with the weights and the optimizer (fewtune/jobs/random_state.py)."""

import pytest

from conftest import compose_cfg, tiny_overrides
from fewtune.models.base import FewShotModule
from fewtune.train import train


class Crash(RuntimeError):
    pass


def record_losses(monkeypatch, crash_at: int | None = None) -> dict[int, float]:
    """The training loss at each global step; raises (a simulated kill) at ``crash_at``."""
    losses = {}
    original = FewShotModule.training_step

    def step(self, batch, batch_idx):
        if self.trainer.global_step == crash_at:
            raise Crash(f"killed at step {crash_at}")
        loss = original(self, batch, batch_idx)
        losses[self.trainer.global_step] = loss.item()
        return loss

    monkeypatch.setattr(FewShotModule, "training_step", step)
    return losses


# An epoch is one step here (8 examples, batch 8): every dev evaluation ends an epoch.
@pytest.mark.parametrize(("method", "peft"), [("prompt", "none"), ("finetune", "lora")])
def test_a_resumed_job_ends_as_an_uninterrupted_one(
    method, peft, data_dir, tiny_masked, tmp_path, monkeypatch
):
    # A high learning rate and dropout: a different batch order or mask would show in every loss.
    extra = ("trainer.max_steps=8", "optimizer.lr=5e-3", f"peft={peft}", "peft.lr=5e-3")
    overrides = tiny_overrides(tiny_masked, data_dir, method, *extra)
    with monkeypatch.context() as patch:
        through = record_losses(patch)
        uninterrupted = train(compose_cfg(overrides, tmp_path / "through"))

    with monkeypatch.context() as patch:
        record_losses(patch, crash_at=5)
        with pytest.raises(Crash):
            train(compose_cfg(overrides, tmp_path / "killed"))
    resumed_losses = record_losses(monkeypatch)
    resumed = train(compose_cfg(overrides, tmp_path / "killed"))

    assert resumed["resumed_from_step"] == 4
    assert resumed_losses == {step: through[step] for step in range(4, 8)}
    assert (
        resumed["test"] == uninterrupted["test"]
        and resumed["best_dev"] == uninterrupted["best_dev"]
    )
