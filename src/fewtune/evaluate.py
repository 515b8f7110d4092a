"""Test a finished run again from what it stored: the shared backbone plus the run's weights.

    python -m fewtune.evaluate <run dir> [key=value ...]

The run's ``.hydra/config.yaml`` rebuilds the model, which then gets the run's trained weights:
``task_weights.safetensors`` for a parameter-efficient run (peft != none), the Lightning
checkpoint for full fine-tuning (if it was kept), none for zero-shot. The test metrics are
printed as JSON and compared with the run's metrics.json; on the same kind of device they are
equal. ``key=value`` overrides the config, e.g. ``paths.data_dir=...`` or ``trainer.accelerator=cpu``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from fewtune.errors import FewtuneError
from fewtune.results import METRICS_FILE

log = logging.getLogger("fewtune")
CONFIG_FILE = Path(".hydra") / "config.yaml"


def run_config(run_dir: Path, overrides: list[str] = ()) -> DictConfig:
    import fewtune.config  # noqa: F401  (registers the resolvers the saved config uses)

    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise FewtuneError(f"{path} is missing: give the folder of a run made by python -m fewtune.train")
    cfg = OmegaConf.load(path)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except Exception as err:
        raise FewtuneError(f"bad override in {list(overrides)}: {str(err).splitlines()[0]}") from None
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
            raise FewtuneError(f"{path} is missing: the run did not finish, so there is nothing to evaluate")
        peft.load_task_weights(module, path)
        peft.merge_if_asked(module.model, cfg.peft)
    elif cfg.method.train:
        path = Path(cfg.callbacks.model_checkpoint.dirpath) / f"{cfg.callbacks.model_checkpoint.filename}.ckpt"
        if not path.is_file():
            raise FewtuneError(
                f"{path} is missing: a full fine-tuning run keeps its weights only in its checkpoint, "
                "which delete_checkpoints=true (or a run without dev evaluation) leaves out"
            )
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])


def evaluate(run_dir: str | Path, overrides: list[str] = (), callbacks: list = ()) -> dict[str, float]:
    """The run's test metrics, measured again: {metric name: value} as in metrics.json's "test".

    ``callbacks`` join the test (their on_test_batch_end gets each batch's label logits).
    """
    import hydra
    import pytorch_lightning as pl

    from fewtune.progress_bars import progress_callbacks
    from fewtune.train import build

    run_dir = Path(run_dir)
    cfg = run_config(run_dir, overrides)
    if cfg.method.name == "pet":
        raise FewtuneError(
            f"{run_dir} is a PET run: several models and their ensemble, which evaluate does not re-test; "
            "its metrics.json holds each pattern's and the ensemble's test metrics"
        )
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    load_run_weights(module, cfg, run_dir)
    callbacks = [*callbacks, *progress_callbacks(cfg)]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {name.removeprefix("test/"): v for name, v in module.test_results.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fewtune.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the output folder of a finished run")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        test = evaluate(args.run_dir, args.overrides)
    except FewtuneError as err:
        raise SystemExit(f"error: {err}") from None
    except OmegaConfBaseException as err:  # an override that leaves the config incomplete
        raise SystemExit(f"error: the run's config with {args.overrides}: {str(err).splitlines()[0]}") from None
    print(json.dumps(test, indent=2, sort_keys=True))
    saved = args.run_dir / METRICS_FILE
    if saved.is_file():
        before = json.loads(saved.read_text()).get("test")
        same = before == test
        print(f"{'equal to' if same else 'DIFFERENT from'} the test metrics in {saved}", file=sys.stderr)


if __name__ == "__main__":
    main()
