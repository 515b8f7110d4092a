"""Padding-free training batches (models/packing.py): the same loss and gradients as padding."""

import pytest
import torch

from conftest import compose_cfg, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def built(request, family: str, method: str, data_dir, tmp_path, *extra: str):
    model_dir = request.getfixturevalue("tiny_causal" if family == "causal" else "tiny_masked")
    return built_from(model_dir, method, data_dir, tmp_path, *extra)


def built_from(model_dir, method: str, data_dir, tmp_path, *extra: str):
    from fewtune.run.build import build

    cfg = compose_cfg(tiny_overrides(model_dir, data_dir, method, *extra), tmp_path)
    torch.manual_seed(0)
    datamodule, module = build(cfg)
    datamodule.setup()
    batch = datamodule.collate(datamodule.encoded["train"])  # all 8 examples, of several lengths
    assert batch["attention_mask"].sum(1).unique().numel() > 1, "the test needs padding to remove"
    return module, batch


def loss_and_grads(module, logits):
    module.zero_grad()
    loss = module.loss(logits, torch.arange(len(logits)) % module.num_labels)
    loss.backward()
    return loss.item(), {
        n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize(
    "family,method",
    [("causal", "prompt"), ("causal", "finetune"), ("masked", "prompt"), ("masked", "finetune")],
)
def test_packed_batch_gives_the_padded_loss_and_gradients(
    family, method, data_dir, tmp_path, request
):
    # Which route packs (restarting positions alone, or a block mask too) is the probe's choice for
    # the installed transformers (an encoder needed the block mask before 5.25, not after); what
    # must hold on every version is that the model packs and computes what padding computes.
    module, batch = built(request, family, method, data_dir, tmp_path)
    module.train()
    how = module.packing(batch)
    assert how is not None, "the probe found no exact way to pack this model"
    assert len(module.packed_rows(batch, how)) == len(batch["labels"])

    module.eval()  # no dropout: both ways compute the same function
    head = module.predictions if method == "finetune" else (lambda h: h)
    padded_loss, padded_grads = loss_and_grads(
        module, head(label_rows(module, module.padded_rows(batch)))
    )
    packed_loss, packed_grads = loss_and_grads(
        module, head(label_rows(module, module.packed_rows(batch, how)))
    )
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert packed_grads.keys() == padded_grads.keys()
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_a_config_naming_another_pad_id_still_pools_the_last_real_token(
    tiny_causal, data_dir, tmp_path
):
    # As SmolLM2 converted by transformers 5.17: its tokenizer pads with one id, its config names
    # another. Padded batches (dev, test) must pool what packed rows pool, each last real token.
    import json
    import shutil

    model_dir = shutil.copytree(tiny_causal, tmp_path / "other-pad-id")
    config = json.loads((model_dir / "config.json").read_text())
    config["pad_token_id"] += 1
    (model_dir / "config.json").write_text(json.dumps(config))
    module, batch = built_from(model_dir, "finetune", data_dir, tmp_path / "run")
    module.train()
    how = module.packing(batch)
    module.eval()
    padded = module.predictions(module.padded_rows(batch))
    packed = module.predictions(module.packed_rows(batch, how))
    torch.testing.assert_close(padded, packed, atol=1e-5, rtol=1e-4)


def label_rows(module, rows):
    """The label logits from a head's per-example rows (the prompt head's are slot hidden states)."""
    if not hasattr(module, "label_words"):
        return rows
    from fewtune.models.prompt_head import word_logits

    return word_logits(module.model, rows, module.label_word_ids)


def test_training_packs_only_when_asked_and_only_in_training(data_dir, tmp_path, request):
    module, batch = built(request, "causal", "prompt", data_dir, tmp_path, "pack_training=false")
    module.train()
    assert module.packing(batch) is None
    module, batch = built(request, "causal", "prompt", data_dir, tmp_path)
    module.eval()
    assert module.packing(batch) is None  # evaluation batches are length-sorted and stay padded


def test_a_body_with_virtual_tokens_falls_back_to_padding(data_dir, tmp_path, request):
    # peft's prompt tuning puts positions in front of each row: a packed row would share them.
    module, batch = built(request, "causal", "prompt", data_dir, tmp_path, "peft=prompt_tuning")
    module.train()
    assert module.packing(batch) is None
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)


def test_one_example_cannot_show_packing_is_exact(data_dir, tmp_path, request):
    # an encoder without the block mask attends across examples, which one example never shows
    module, batch = built(request, "masked", "finetune", data_dir, tmp_path)
    module.train()
    assert module.packing({key: value[:1] for key, value in batch.items()}) is None
