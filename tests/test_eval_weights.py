"""Linear weights cast once for the test set under bf16 autocast: identical scores, float32 after."""

import pytest
import pytorch_lightning as pl
import torch

from conftest import compose_cfg, tiny_overrides
from fewtune.models.eval_weights import cast_linear_weights, restore_weights
from fewtune.train import build

pytestmark = pytest.mark.usefixtures("one_thread")


def built(family, peft, data_dir, tmp_path, request):
    extra = [f"peft={peft}", "trainer.precision=bf16-mixed"]
    cfg = compose_cfg(tiny_overrides(request.getfixturevalue(family), data_dir, "prompt", *extra), tmp_path)
    datamodule, module = build(cfg)
    datamodule.setup()
    return datamodule, module.eval()


def logits(module, batch):
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return module.label_logits(batch)


@pytest.mark.parametrize("family,peft", [("tiny_masked", "none"), ("tiny_causal", "none"), ("tiny_causal", "lora")])
def test_cast_weights_give_the_scores_of_autocast_and_come_back_unchanged(family, peft, data_dir, tmp_path, request):
    datamodule, module = built(family, peft, data_dir, tmp_path, request)
    batch = datamodule.collate(datamodule.encoded["test"])
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    expected = logits(module, batch)

    saved = cast_linear_weights(module, torch.bfloat16)
    assert saved and all(p.dtype == torch.bfloat16 for p, _ in saved)
    # an embedding's weights (and a head tied to them) keep float32
    embeddings = [m.weight for m in module.modules() if isinstance(m, torch.nn.Embedding)]
    assert embeddings and all(w.dtype == torch.float32 for w in embeddings)
    assert torch.equal(logits(module, batch), expected)

    restore_weights(saved)
    for name, p in module.named_parameters():
        assert p.dtype == torch.float32 and torch.equal(p, before[name]), name


def test_trainer_test_casts_for_the_test_set_and_restores_after(data_dir, tmp_path, request):
    datamodule, module = built("tiny_causal", "none", data_dir, tmp_path, request)
    seen = []

    class Spy(pl.Callback):
        def on_test_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(pl_module.model.lm_head.weight.dtype)
            seen.append(next(m for m in pl_module.modules() if isinstance(m, torch.nn.Linear)
                             and m.weight is not pl_module.model.lm_head.weight).weight.dtype)

    trainer = pl.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, callbacks=[Spy()],
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    assert seen[:2] == [torch.float32, torch.bfloat16]  # tied head float32, other Linear layers bf16
    assert all(p.dtype == torch.float32 for p in module.parameters())
