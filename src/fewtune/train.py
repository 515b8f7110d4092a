"""The training entry point: compose a config with Hydra, fit, test with the best dev
checkpoint, write metrics.json.

    python -m fewtune.train [key=value ...] [-m for a sweep]

``train(cfg)`` does the work (run/methods.py: the method's runner, else one model, run/single.py)
and is what the tests call with a composed config; ``main`` is the thin Hydra wrapper that turns
user errors into one line and records a failed job in failed.json.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fewtune.config import CONF_DIR
from fewtune.errors import FewtuneError
from fewtune.run.methods import train
from fewtune.run.results import FAILED_FILE

__all__ = ["main", "train"]
# Lightning is imported inside functions only (here and in run/methods.py): imported before
# Hydra sets up logging, it would add a console handler of its own (run/console.py).
log = logging.getLogger("fewtune")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from fewtune.jobs import stopped
    from fewtune.run.console import quiet_libraries
    from fewtune.run.distributed import write_json_on_rank_zero
    from fewtune.run.loggers import finish_wandb

    quiet_libraries()
    out = Path(cfg.paths.output_dir)
    stopped.stop_on_sigterm()
    try:
        results = train(cfg)
        return results["test"][cfg.task.metric]
    except SIGTERMException as err:  # scancel, a preemption, kill: what stopped it, how to continue
        record = stopped.failure_record(err, out)
        write_json_on_rank_zero(out / FAILED_FILE, record)
        print(f"error: {record['error']}", file=sys.stderr)
        raise SystemExit(stopped.EXIT_CODE) from None
    except FewtuneError as err:
        write_json_on_rank_zero(out / FAILED_FILE, {"error": str(err)})
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("job failed: %s", err)  # the other jobs go on; the table reports this one
            return None
        raise SystemExit(f"error: {err}") from None
    except BaseException as err:  # a bug's traceback, Ctrl-C, submitit's requeue
        write_json_on_rank_zero(out / FAILED_FILE, stopped.failure_record(err, out))
        raise
    finally:
        finish_wandb()


if __name__ == "__main__":
    main()
