"""The training entry point: compose a config with Hydra, fit, test with the best dev
checkpoint, write metrics.json.

    python -m fewtune.train [key=value ...] [-m for a sweep]

``train(cfg)`` does the work (run/methods.py: the method's runner, else one model, run/single.py)
and is what the tests call with a composed config; ``main`` is the thin Hydra wrapper that turns
user errors into one line and records a failed job in failed.json.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fewtune.config import CONF_DIR
from fewtune.errors import FewtuneError
from fewtune.run.loggers import finish_wandb
from fewtune.run.methods import train
from fewtune.run.results import FAILED_FILE

__all__ = ["main", "train"]
log = logging.getLogger("fewtune")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from fewtune.jobs.stopped import failure_record
    from fewtune.run.console import quiet_libraries
    from fewtune.run.distributed import write_json_on_rank_zero

    quiet_libraries()
    out = Path(cfg.paths.output_dir)
    try:
        results = train(cfg)
        return results["test"][cfg.task.metric]
    except FewtuneError as err:
        write_json_on_rank_zero(out / FAILED_FILE, {"error": str(err)})
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("job failed: %s", err)  # the other jobs go on; the table reports this one
            return None
        raise SystemExit(f"error: {err}") from None
    except BaseException as err:
        # a job stopped from outside (scancel, preemption, Ctrl-C): also how it continues
        write_json_on_rank_zero(out / FAILED_FILE, failure_record(err, out))
        raise
    finally:
        finish_wandb()


if __name__ == "__main__":
    main()
