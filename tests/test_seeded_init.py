"""The same seed gives the same new weights (a classifier head, LoRA adapters, a soft prompt)
on any device: they are drawn on the CPU from the seed (models/seeded_init.py), then moved."""

import pytest
import torch

from conftest import compose_cfg, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [
    ("tiny_masked", "finetune", "peft=none"),
    ("tiny_causal", "finetune", "peft=none"),
    ("tiny_causal", "prompt", "peft=lora"),
    ("tiny_causal", "prompt", "peft=prompt_tuning"),
    ("tiny_masked", "finetune", "peft=lora"),
]


def new_weights(module) -> dict[str, torch.Tensor]:
    """The weights a run trains that the checkpoint does not have: the head, adapters, prompts."""
    names = ("classifier", "score", "lora_", "prompt_encoder")
    return {
        n: p.detach().clone() for n, p in module.named_parameters() if any(k in n for k in names)
    }


def build_as(
    request,
    model: str,
    method: str,
    peft: str,
    data_dir,
    tmp_path,
    *extra: str,
    drawn_before: int = 0,
):
    from fewtune.run.build import build

    overrides = tiny_overrides(
        request.getfixturevalue(model), data_dir, method, peft, "peft.init=random", *extra
    )
    if peft != "peft=prompt_tuning":
        overrides.remove("peft.init=random")
    cfg = compose_cfg(overrides, tmp_path)
    torch.manual_seed(cfg.seed)  # as train() does with seed_everything
    torch.rand(drawn_before)
    return build(cfg)[1]


@pytest.mark.parametrize("model,method,peft", CASES)
def test_a_gpu_run_builds_the_same_new_weights_as_a_cpu_run(
    model, method, peft, data_dir, tmp_path, request, monkeypatch
):
    cpu = new_weights(build_as(request, model, method, peft, data_dir, tmp_path / "cpu"))
    assert cpu and all(w.device.type == "cpu" for w in cpu.values())

    # A GPU run: trainer=gpu (bf16-mixed, auto packing and attention resolve for CUDA), and
    # something drew from the CPU generator first (CUDA's and Lightning's set-up, another job).
    from fewtune.run import hardware

    monkeypatch.setattr(hardware, "cuda_selected", lambda accelerator: True)
    monkeypatch.setattr(hardware, "visible_gpus", lambda: 1)
    gpu = new_weights(
        build_as(
            request,
            model,
            method,
            peft,
            data_dir,
            tmp_path / "gpu",
            "trainer=gpu",
            drawn_before=1000,
        )
    )
    assert gpu.keys() == cpu.keys()
    for name, weight in cpu.items():
        assert torch.equal(gpu[name], weight), name

    other_seed = new_weights(
        build_as(
            request, model, method, peft, data_dir, tmp_path / "seed", "seed=14", "data_seed=13"
        )
    )
    assert any(
        not torch.equal(other_seed[n], w) for n, w in cpu.items()
    )  # the seed does decide them


def test_new_weights_are_drawn_on_the_cpu_whatever_the_default_device(tiny_masked):
    """Code that sets a default device (torch.set_default_device("cuda") on a GPU machine) would
    make a new head draw there, from another generator; here "meta" stands for that device."""
    from fewtune.models import backbones
    from fewtune.models.seeded_init import drawn_on_cpu

    spec = backbones.resolve({"path": str(tiny_masked), "family": "masked"}, tiny_masked)
    with drawn_on_cpu(7):
        expected = backbones.load_model(spec, "classifier").classifier.weight.detach().clone()
    torch.set_default_device("meta")
    try:
        torch.rand(3)  # and the generator moved on
        with drawn_on_cpu(7):
            head = backbones.load_model(spec, "classifier").classifier.weight
    finally:
        torch.set_default_device(None)
    assert head.device.type == "cpu"
    assert torch.equal(head, expected)
