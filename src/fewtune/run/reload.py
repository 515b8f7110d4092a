"""A finished run, rebuilt from its folder: its saved config and its trained weights.

The run's ``.hydra/config.yaml`` rebuilds the model (run/build.py), which then gets the run's
trained weights: ``task_weights.safetensors`` for a parameter-efficient run (peft != none), the
Lightning checkpoint for full fine-tuning (if it was kept), none for zero-shot.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from fewtune.errors import FewtuneError

CONFIG_FILE = Path(".hydra") / "config.yaml"


def run_config(run_dir: Path, overrides: list[str] = ()) -> DictConfig:
    import fewtune.config  # noqa: F401  (registers the resolvers the saved config uses)

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FewtuneError(
            f"{path} is missing: give the folder of a run made by python -m fewtune.train"
        )
    saved = OmegaConf.load(path)
    try:
        given = OmegaConf.from_dotlist(list(overrides))
        cfg = OmegaConf.merge(saved, given)
    except Exception as err:
        raise FewtuneError(
            f"bad override in {list(overrides)}: {str(err).splitlines()[0]}"
        ) from None
    for item in overrides:  # a group is chosen when a run starts; a saved run takes its values
        key = item.split("=", 1)[0]
        group = OmegaConf.select(saved, key, default=None)
        if isinstance(group, DictConfig) and not isinstance(
            OmegaConf.select(given, key), DictConfig
        ):
            raise FewtuneError(
                f"{item}: {key} is a group of settings in the run's saved config, chosen when the run "
                f"started; change one of its values instead, as {key}.<setting>=<value> (e.g. "
                "trainer.accelerator=cpu)"
            )
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)  # was ${hydra:runtime.output_dir}
        if "peft" not in cfg:  # a run made before the peft group
            cfg.peft = {"name": "none"}
    return cfg


def load_run_weights(module, cfg: DictConfig, run_dir: Path) -> None:
    import torch

    from fewtune import peft

    if peft.enabled(cfg.peft):
        path = run_dir / peft.TASK_WEIGHTS_FILE
        if not path.is_file():
            raise FewtuneError(
                f"{path} is missing: the run did not finish, so there is nothing to evaluate"
            )
        peft.load_task_weights(module, path)
        peft.merge_if_asked(module.model, cfg.peft)
    elif cfg.method.train:
        path = (
            Path(cfg.callbacks.model_checkpoint.dirpath)
            / f"{cfg.callbacks.model_checkpoint.filename}.ckpt"
        )
        if not path.is_file():
            raise FewtuneError(
                f"{path} is missing: a full fine-tuning run keeps its weights only in its checkpoint, "
                "which delete_checkpoints=true (or a run without dev evaluation) leaves out"
            )
        module.load_state_dict(
            torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        )
