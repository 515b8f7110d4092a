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

from fewtune.errors import FewtuneError, saved_run_errors
from fewtune.run.reload import load_run_weights, run_config
from fewtune.run.results import METRICS_FILE, read_json_object

log = logging.getLogger("fewtune")


def evaluate(
    run_dir: str | Path, overrides: list[str] = (), callbacks: list = ()
) -> dict[str, float]:
    """The run's test metrics, measured again: {metric name: value} as in metrics.json's "test".

    ``callbacks`` join the test (their on_test_batch_end gets each batch's label logits).
    """
    import hydra
    import pytorch_lightning as pl

    from fewtune.run.build import build
    from fewtune.run.progress import progress_callbacks

    run_dir = Path(run_dir)
    cfg = run_config(run_dir, overrides)
    check_evaluable(run_dir, cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    load_run_weights(module, cfg, run_dir)
    callbacks = [*callbacks, *progress_callbacks(cfg)]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {name.removeprefix("test/"): v for name, v in module.test_results.items()}


def check_evaluable(run_dir: Path, cfg) -> None:
    """A method with a runner of its own (run/methods.py) is re-tested only through its
    ``evaluate`` hook, which may refuse with its reason."""
    from fewtune.run import methods

    hook = methods.hook(cfg.method, "evaluate")
    if hook is not None:
        hook(run_dir, cfg)
    elif methods.hook(cfg.method, "runner") is not None:
        raise FewtuneError(
            f"{run_dir} is a method={cfg.method.name} run made by the method's own runner, which evaluate "
            "does not re-test; its metrics.json holds its test metrics"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fewtune.evaluate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="the output folder of a finished run")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with saved_run_errors(args.overrides):
        test = evaluate(args.run_dir, args.overrides)
    print(json.dumps(test, indent=2, sort_keys=True))
    saved = args.run_dir / METRICS_FILE
    if saved.is_file():
        try:
            before = read_json_object(saved, "nothing to compare with").get("test")
        except FewtuneError as err:
            print(f"note: {err}", file=sys.stderr)
            return
        same = before == test
        print(
            f"{'equal to' if same else 'DIFFERENT from'} the test metrics in {saved}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
