"""The jobs a Hydra multirun asks for, from its config: for the table's missing jobs and the
multirun's "job 3/30" lines."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def expected_jobs(hydra_cfg: DictConfig) -> list[list[str]]:
    """One override list per job, in launch order, as Hydra's BasicSweeper expands them:
    a sweep config's ``hydra.sweeper.params``, then the command line's overrides."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.to_container(hydra_cfg.sweeper.get("params") or OmegaConf.create({}))
    arguments = [f"{key}={value}" for key, value in params.items()] + list(hydra_cfg.overrides.task)
    parsed = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
