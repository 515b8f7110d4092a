"""OmegaConf resolvers used by conf/: where the project is and where caches go."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from fewtune.run.hardware import cuda_selected, fast_precision  # import torch only when called

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


def _user_cache() -> str:
    from platformdirs import user_cache_dir

    return user_cache_dir("fewtune")


def _precision_for(accelerator: str) -> str:
    # GPUs: bf16 where they compute it (not a V100's); the CPU processes of gloo: float32
    return fast_precision(accelerator) if cuda_selected(accelerator) else "32-true"


def _slurm_gpus(accelerator: str, devices) -> int | None:
    return int(devices) if str(accelerator) in ("gpu", "cuda") else None


def _output_dir() -> str | None:
    # The run's folder; under --cfg no job runs, so the folder a run would get is shown instead.
    from hydra.core.hydra_config import HydraConfig

    from omegaconf import OmegaConf

    hydra = HydraConfig.get()
    return OmegaConf.select(hydra, "runtime.output_dir", default=None) or hydra.run.dir


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT), replace=True)
    OmegaConf.register_new_resolver("output_dir", _output_dir, replace=True)
    OmegaConf.register_new_resolver("user_cache", _user_cache, replace=True)
    # A readable model name from a hub id or folder: "org/model" and "/x/model" give "model".
    OmegaConf.register_new_resolver("basename", lambda path: Path(str(path)).name, replace=True)
    # trainer=ddp: bf16 autocast on GPUs with bf16, else full precision (trainer.precision= overrides).
    OmegaConf.register_new_resolver("precision_for", _precision_for, replace=True)
    # experiment=cpu: bf16 autocast where the hardware computes in bf16, float32 elsewhere.
    OmegaConf.register_new_resolver("fast_precision", fast_precision, replace=True)
    # hydra/launcher=slurm: the GPUs to ask SLURM for, from the trainer's settings.
    OmegaConf.register_new_resolver("slurm_gpus", _slurm_gpus, replace=True)


register_resolvers()
