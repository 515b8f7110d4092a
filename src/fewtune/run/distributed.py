"""Data-parallel runs (``trainer=ddp``): which launches work, exact evaluation, who writes.

Lightning's ``ddp`` strategy starts the other processes by running the same command again
(``python -m fewtune.train ...``; under Hydra it adds ``hydra.run.dir`` so that all of them share
the run folder), or finds them started already by SLURM or torchrun. Every process runs the
whole of ``train(cfg)``; only global rank 0 writes the run's files.
"""

from __future__ import annotations

import warnings
from collections.abc import Sized

from fewtune.errors import FewtuneError

SLURM_HINT = (
    "run it as a single run (python -m fewtune.train trainer=ddp ...), or give each job processes of "
    "its own with hydra/launcher=slurm"
)


def prepare(trainer) -> None:
    """Before any process starts: refuse the launches in which Lightning's DDP cannot work."""
    from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
    from pytorch_lightning.utilities.warnings import PossibleUserWarning

    launcher = trainer.strategy.launcher
    if trainer.world_size <= 1 or launcher is None:
        return
    # Lightning suggests sync_dist=True for epoch-level values; ours are torchmetrics results,
    # already reduced across the processes by torchmetrics.
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*", category=PossibleUserWarning)
    if isinstance(launcher, _MultiProcessingLauncher):
        # The spawned processes keep the test metrics, the step times and the best dev score.
        raise FewtuneError(
            "a spawning strategy (ddp_spawn, ddp_fork, ddp_notebook) is not supported: the results stay "
            "in the spawned processes; use trainer=ddp (trainer.strategy=ddp)"
        )
    started_outside = (
        trainer.strategy.cluster_environment.creates_processes_externally
    )  # SLURM, torchrun
    if isinstance(launcher, _SubprocessScriptLauncher) and not started_outside:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not _run_as_entry_point():
            raise FewtuneError(
                "trainer=ddp starts its other processes by running the command again, which works from "
                f"python -m fewtune.train only (not from train(cfg) in Python); {SLURM_HINT}"
            )
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            # The command again would be the whole sweep, and one process runs many jobs.
            raise FewtuneError(
                "trainer=ddp cannot start its processes inside a local multirun (-m): the command "
                f"run again would be the whole sweep; {SLURM_HINT}"
            )


def _run_as_entry_point() -> bool:
    # Lightning runs __main__ again with the same arguments: it must be this entry point.
    import __main__

    spec = getattr(__main__, "__spec__", None)
    return spec is not None and spec.name == "fewtune.train"


def eval_sampler(trainer, data: Sized):
    """Each process evaluates every ``world_size``-th example of the (length-sorted) split, none twice.

    Lightning's default DistributedSampler would pad the split with repeated examples so that all
    processes get as many; the metrics would count those twice. torchmetrics then sums the
    processes' states, so the metric is that of the whole split.
    """
    from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

    kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    if not kwargs or kwargs["num_replicas"] <= 1:
        return None
    if len(data) < kwargs["num_replicas"]:
        # Every process must evaluate at least one batch (DDP syncs buffers on the first).
        raise FewtuneError(
            f"an evaluation split of {len(data)} examples cannot be shared by {kwargs['num_replicas']} "
            "processes; use fewer trainer.devices"
        )
    return UnrepeatedDistributedSampler(data, shuffle=False, **kwargs)


def write_json_on_rank_zero(path, data) -> None:
    """``write_json_atomic`` in global rank 0 only: every DDP process runs the same code."""
    from fewtune.jobs.atomic import write_json_atomic

    if is_rank_zero():
        write_json_atomic(path, data)


def is_rank_zero() -> bool:
    """Whether this process writes the run's files: global rank 0 (always so without DDP)."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
