"""A bounded set of shapes (data/lengths.py): batches and packed rows take their lengths from a
ladder, with the same results as without it, and a 1000-step run meets a few shapes."""

import json
import random

import pytest
import torch

from conftest import compose_cfg, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_ladder_holds_every_length_in_a_few_sizes():
    from fewtune.data.lengths import LengthLadder

    ladder = LengthLadder(per_octave=4, multiple=8, minimum=16)
    assert ladder.sizes(128) == [16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128]
    for length in range(1, 1025):
        size = ladder.round_up(length)
        assert size >= length and size % 8 == 0
        assert size <= max(
            16, 1.2 * length + 8
        )  # at most one step (2^(1/4)) and the rounding above
    assert len({ladder.round_up(n) for n in range(1, 513)}) == len(ladder.sizes(512)) == 19
    assert LengthLadder(per_octave=0).round_up(37) == 37  # no ladder: the batch's own length


def test_bad_shapes_settings_are_one_clear_line():
    from fewtune.data.lengths import LengthLadder
    from fewtune.errors import FewtuneError

    with pytest.raises(FewtuneError, match="unknown setting"):
        LengthLadder.from_config({"per_octave": 4, "step": 64})
    with pytest.raises(FewtuneError, match="whole numbers"):
        LengthLadder.from_config({"per_octave": "many"})
    with pytest.raises(FewtuneError, match="whole numbers"):
        LengthLadder.from_config({"multiple": "eight"})
    with pytest.raises(FewtuneError, match="per_octave must be"):
        LengthLadder.from_config({"per_octave": -1})


def test_auto_ladders_every_batch_on_a_gpu_and_all_but_evaluation_on_the_cpu():
    from fewtune.data.lengths import LengthLadder

    assert LengthLadder.from_config({}, gpu=True) == (LengthLadder(4), LengthLadder(4))
    assert LengthLadder.from_config({"per_octave": "auto"}, gpu=False) == (
        LengthLadder(4),
        LengthLadder(0),
    )
    two = LengthLadder(2, multiple=64, minimum=64)
    assert LengthLadder.from_config({"per_octave": 2, "multiple": 64, "minimum": 64}) == (two, two)


def test_collated_batches_are_padded_to_the_ladder():
    from fewtune.data.datamodule import Collator
    from fewtune.data.encoding import Encoded
    from fewtune.data.lengths import LengthLadder

    items = [Encoded(input_ids=[5] * n, label=0, slot=n - 1) for n in (3, 17, 9)]
    collate = Collator(0, LengthLadder(), LengthLadder(per_octave=0))
    batch = collate(items)
    assert batch["input_ids"].shape == (3, 24)
    assert batch["attention_mask"].sum(1).tolist() == [3, 17, 9]
    assert collate(items, evaluation=True)["input_ids"].shape == (
        3,
        17,
    )  # the evaluation ladder: none
    assert Collator(0)(items)["input_ids"].shape == (3, 17)


def built(request, family: str, method: str, data_dir, tmp_path, *extra: str):
    from fewtune.run.build import build

    model_dir = request.getfixturevalue("tiny_causal" if family == "causal" else "tiny_masked")
    cfg = compose_cfg(tiny_overrides(model_dir, data_dir, method, *extra), tmp_path)
    torch.manual_seed(0)
    datamodule, module = build(cfg)
    datamodule.setup()
    return module, datamodule.collate(datamodule.encoded["train"])


def loss_and_grads(module, logits):
    module.zero_grad()
    loss = module.loss(logits, torch.arange(len(logits)) % module.num_labels)
    loss.backward()
    return loss.item(), {
        n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize(
    "family,how", [("causal", "positions"), ("masked", "positions"), ("masked", "block_mask")]
)
@pytest.mark.parametrize("method", ["prompt", "finetune"])
def test_ladder_filled_packed_rows_give_the_loss_and_gradients_of_exact_padded_batches(
    family, how, method, data_dir, tmp_path, request
):
    from fewtune.models.packing import pack

    module, batch = built(request, family, method, data_dir, tmp_path)
    exact, _ = built(request, family, method, data_dir, tmp_path, "shapes.per_octave=0")
    module.train()
    assert module.packing(batch) is not None
    packed = pack(batch, module.lengths)
    assert packed.tail > 0 and packed.input_ids.size(1) in module.lengths.sizes(
        packed.input_ids.size(1)
    )
    assert batch["input_ids"].size(1) in module.lengths.sizes(batch["input_ids"].size(1))
    longest = int(batch["attention_mask"].sum(1).max())
    exact_batch = {
        key: value[:, :longest] if value.dim() == 2 else value for key, value in batch.items()
    }

    module.eval()  # no dropout: both ways compute the same function
    exact.load_state_dict(module.state_dict())
    exact.eval()
    padded_loss, padded_grads = loss_and_grads(
        exact, logits_of(exact, exact.padded_rows(exact_batch))
    )
    packed_loss, packed_grads = loss_and_grads(
        module, logits_of(module, module.packed_rows(batch, how))
    )
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    assert packed_grads.keys() == padded_grads.keys()
    for name, grad in padded_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    # the batch padded to the ladder's size gives the exact batch's logits too
    torch.testing.assert_close(
        module.label_logits(batch), exact.label_logits(exact_batch), atol=1e-5, rtol=1e-4
    )


def logits_of(module, rows):
    """Label logits from a head's per-example rows (the prompt head's are slot hidden states)."""
    if not hasattr(module, "label_words"):
        return module.predictions(rows)
    from fewtune.models.prompt_head import word_logits

    return word_logits(module.model, rows, module.label_word_ids)


def test_pack_training_auto_packs_on_the_cpu_and_pads_on_a_gpu():
    from fewtune.errors import FewtuneError
    from fewtune.models.device_defaults import pack_setting, packs_on

    assert packs_on("auto", "cpu") and not packs_on("auto", "cuda")
    assert packs_on(True, "cuda") and not packs_on("false", "cpu")
    with pytest.raises(
        FewtuneError, match="pack_training='sometimes' is not one of auto, true, false"
    ):
        pack_setting("sometimes")


def test_a_training_batch_on_a_gpu_stays_padded_under_auto(
    data_dir, tmp_path, request, monkeypatch
):
    module, batch = built(request, "causal", "prompt", data_dir, tmp_path)
    module.train()
    assert module.packing(batch) == "positions"  # on the CPU
    gpu_batch = {key: FakeCuda(value) for key, value in batch.items()}
    assert module.packing(gpu_batch) is None
    module.pack_training = True
    assert module.packing(gpu_batch) == "positions"


class FakeCuda:
    """A batch tensor as it would be on a GPU, for the device check alone."""

    def __init__(self, tensor):
        self.tensor = tensor
        self.device = torch.device("cuda", 0) if torch.cuda.is_available() else FakeDevice()


class FakeDevice:
    type = "cuda"


WORDS = [
    "the",
    "a",
    "film",
    "movie",
    "story",
    "acting",
    "plot",
    "great",
    "terrible",
    "fine",
    "dull",
    "long",
    "short",
    "funny",
    "sad",
    "very",
]


def random_length_split(root, k: int = 16, seed: int = 13, test_size: int = 320):
    """An SST-2 split whose sentences have random lengths (2 to 50 words), as real sentences do."""
    rng = random.Random(0)
    folder = root / "k-shot" / "SST-2" / f"{k}-{seed}"
    folder.mkdir(parents=True)
    for split, n in (("train", 2 * k), ("dev", 2 * k), ("test", test_size)):
        rows = [f"{' '.join(rng.choices(WORDS, k=rng.randint(2, 50)))}\t{i % 2}" for i in range(n)]
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize(
    "settings",
    [
        ["pack_training=auto", "shapes.per_octave=auto"],  # the CPU's defaults: packed rows
        [
            "pack_training=false",
            "shapes.per_octave=4",
        ],  # a GPU's defaults: padded, the ladder for all
    ],
)
def test_a_1000_step_run_meets_at_most_8_shapes_and_records_them(settings, tiny_causal, tmp_path):
    from fewtune.train import train

    data = random_length_split(tmp_path / "data")
    overrides = tiny_overrides(tiny_causal, data, "prompt", "k=16", *settings)
    overrides += [
        "trainer.max_steps=1000",
        "trainer.val_check_interval=100",
        "~callbacks.model_checkpoint",
    ]
    results = train(compose_cfg(overrides, tmp_path / "run"))
    assert results["steps"] == 1000
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 2 <= recorded["train_shapes"] <= 8
    if "shapes.per_octave=4" in settings:  # 1 dev batch and 10 test batches of random lengths
        assert 2 <= recorded["eval_shapes"] <= 8
    else:  # the CPU evaluates without the ladder: every batch its own length
        assert recorded["eval_shapes"] == 11
        # without the ladder nearly every packed row has a length of its own
        exact = [*overrides[:-3], "trainer.max_steps=40", "shapes.per_octave=0"]
        assert train(compose_cfg(exact, tmp_path / "exact"))["train_shapes"] > 20


def test_a_soft_prompt_run_counts_its_shapes_too(tiny_causal, data_dir, tmp_path):
    # peft's soft prompts wrap the body, where transformers' get_input_embeddings cannot look
    from fewtune.train import train

    results = train(
        compose_cfg(tiny_overrides(tiny_causal, data_dir, "prompt", "peft=prompt_tuning"), tmp_path)
    )
    assert results["train_shapes"] >= 1 and results["eval_shapes"] >= 1


@pytest.mark.parametrize("per_octave", ["4", "0", "auto"])
def test_setfit_pairs_are_padded_to_the_ladder(per_octave, tiny_masked, tmp_path):
    # SetFit's contrastive phase pads each batch of pairs to its longest sentence: without the
    # ladder, small batches have a new length at nearly every step. Its batches are all padded
    # ones, so auto follows the evaluation ladder: none on the CPU.
    from fewtune.train import train

    data = random_length_split(tmp_path / "data")
    settings = [
        "method.num_iterations=5",
        "method.body_batch_size=2",
        f"shapes.per_octave={per_octave}",
    ]
    overrides = tiny_overrides(tiny_masked, data, "setfit", "k=16", *settings)
    results = train(compose_cfg(overrides, tmp_path / "run"))
    assert results["setfit"]["body_steps"] == 160  # 5 x 32 examples x 2 pairs, 2 a step
    if per_octave == "4":
        assert 2 <= results["train_shapes"] <= 8 and 2 <= results["eval_shapes"] <= 8
    else:
        assert results["train_shapes"] > 12 and results["eval_shapes"] == 11


def test_setfit_on_a_gpu_pads_every_batch_to_the_ladder(
    tiny_masked, data_dir, tmp_path, monkeypatch
):
    from fewtune.run import hardware
    from fewtune.setfit.build import build

    monkeypatch.setattr(hardware, "cuda_selected", lambda accelerator: True)
    monkeypatch.setattr(hardware, "visible_gpus", lambda: 1)
    cfg = compose_cfg(tiny_overrides(tiny_masked, data_dir, "setfit", "trainer=gpu"), tmp_path)
    datamodule, _ = build(cfg)  # builds as a GPU run would (nothing runs on the GPU)
    assert datamodule.collate.lengths.per_octave == datamodule.collate.eval_lengths.per_octave == 4
