"""What a parameter-efficient run stores for its task: the weights it trained, nothing else.

The backbone is shared by all tasks, so such a run keeps only its trained weights (adapters,
soft prompt, biases, classifier head) of the best dev step, as safetensors in
``<run>/task_weights.safetensors``; ``<run>/.hydra/config.yaml`` tells how to rebuild the rest.
While it trains, its Lightning checkpoints already hold those weights alone
(``FewShotModule.trained_only_checkpoints``); the best one becomes the file and is deleted.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fewtune.errors import FewtuneError
from fewtune.jobs.atomic import replaced

TASK_WEIGHTS_FILE = "task_weights.safetensors"


def trained_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """name -> tensor of the parameters that train (tied ones appear once, under their first name)."""
    return {
        name: p.detach().cpu().contiguous()
        for name, p in module.named_parameters()
        if p.requires_grad
    }


def keep_task_weights(
    module: nn.Module, ckpt_path: str | None, run_dir: str | Path, peft_name: str, strategy=None
) -> Path:
    """Load the best checkpoint's weights into ``module`` (if there is one: else it keeps its last
    weights), write them as the run's task weights and delete the checkpoint.

    ``strategy`` (Lightning's, under DDP): every process loads the weights it tests with, and
    global rank 0 alone writes the file and deletes the checkpoint once all have read it."""
    if ckpt_path:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
        load_into(module, state, ckpt_path)
    path = Path(run_dir) / TASK_WEIGHTS_FILE
    if strategy is not None:
        strategy.barrier("fewtune.keep_task_weights.read")
        if not strategy.is_global_zero:
            strategy.barrier("fewtune.keep_task_weights.written")
            return path
    from safetensors.torch import save_file

    with replaced(path) as tmp:
        save_file(trained_weights(module), tmp, metadata={"peft": peft_name})
    if strategy is not None:
        strategy.barrier("fewtune.keep_task_weights.written")  # the file exists for every process
    if ckpt_path:
        Path(ckpt_path).unlink(missing_ok=True)
        try:
            Path(ckpt_path).parent.rmdir()  # the empty checkpoints/ folder
        except OSError:
            pass
    return path


def load_task_weights(module: nn.Module, path: str | Path) -> None:
    from safetensors.torch import load_file

    load_into(module, load_file(str(path)), path)


def load_into(module: nn.Module, weights: dict[str, torch.Tensor], source) -> None:
    """Load stored trained weights; they must be exactly the weights this module trains."""
    trained = {name for name, p in module.named_parameters() if p.requires_grad}
    try:
        unexpected = module.load_state_dict(weights, strict=False).unexpected_keys
    except RuntimeError as err:  # a shape mismatch
        detail = str(err).splitlines()[-1].strip()
        raise FewtuneError(
            f"{source} does not fit the model the run's config builds: {detail}"
        ) from None
    missing = sorted(trained - set(weights))
    if missing or unexpected:
        raise FewtuneError(
            f"{source} does not fit the model the run's config builds ({len(missing)} trained weights "
            f"missing, e.g. {missing[:1]}; {len(unexpected)} unknown, e.g. {unexpected[:1]}): "
            "was the config or the code changed since the run?"
        )
