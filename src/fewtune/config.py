"""Where the configs are, and the OmegaConf resolvers used by conf/.

The configs of a run come from the checkout's conf/ and, after it, from the user's own config
folders: every folder in FEWTUNE_CONFIG_DIR (several separated by ':'), which every command
reads (conf/train.yaml puts them on Hydra's search path), and for python -m fewtune.train also
Hydra's --config-dir. A user folder holds the same groups as conf/ (task/, model/, method/,
experiment/, ...); a name that conf/ already has stays conf/'s.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

# hardware imports torch only when its functions are called
from fewtune.run.hardware import cuda_named, cuda_selected, fast_precision

CONFIG_DIR_ENV = "FEWTUNE_CONFIG_DIR"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout whose code runs


def checkout_of(folder: Path) -> Path | None:
    """The fewtune checkout that ``folder`` is in (a pyproject.toml naming fewtune, beside conf/train.yaml)."""
    import tomllib

    for parent in (folder, *folder.parents):
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file() and (parent / "conf" / "train.yaml").is_file():
            try:
                name = tomllib.loads(pyproject.read_text()).get("project", {}).get("name")
            except (OSError, ValueError):
                name = None
            if name == "fewtune":
                return parent
    return None


def config_root(cwd: Path | None = None) -> Path:
    """The checkout whose conf/ a command reads: the one it runs in. Run from inside another
    clone than the installed one, that clone's configs are used, and a line says so."""
    try:
        here = checkout_of(Path(cwd or os.getcwd()).resolve())
    except OSError:  # a deleted working directory
        here = None
    if here is None or here == PROJECT_ROOT:
        return PROJECT_ROOT
    print(
        f"note: using the configs of the checkout you are in ({here / 'conf'}) with the fewtune code "
        f"installed from {PROJECT_ROOT}; `pip install -e {here}` to run that checkout's code too",
        file=sys.stderr,
    )
    return here


CONF_ROOT = config_root()
CONF_DIR = CONF_ROOT / "conf"


def user_config_dirs() -> list[Path]:
    """The folders named in FEWTUNE_CONFIG_DIR; one that does not exist is left out with a line."""
    folders = []
    for entry in filter(None, os.environ.get(CONFIG_DIR_ENV, "").split(os.pathsep)):
        folder = Path(entry).expanduser().resolve()
        if folder.is_dir():
            folders.append(folder)
        else:
            print(
                f"warning: {CONFIG_DIR_ENV} names {entry}, which is not a folder; its configs are not read",
                file=sys.stderr,
            )
    return folders


def _user_searchpath() -> list[str]:
    return [f"file://{folder}" for folder in user_config_dirs()]


def _user_cache() -> str:
    from platformdirs import user_cache_dir

    return user_cache_dir("fewtune")


def _precision_for(accelerator: str) -> str:
    # GPUs: bf16 where they compute it (not a V100's); the CPU processes of gloo: float32
    return fast_precision(accelerator) if cuda_selected(accelerator) else "32-true"


def _slurm_gpus(accelerator: str, devices) -> int | None:
    return int(devices) if cuda_named(accelerator) else None


def _output_dir() -> str | None:
    # The run's folder; under --cfg no job runs, so the folder a run would get is shown instead.
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra = HydraConfig.get()
    return OmegaConf.select(hydra, "runtime.output_dir", default=None) or hydra.run.dir


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("project_root", lambda: str(CONF_ROOT), replace=True)
    OmegaConf.register_new_resolver("output_dir", _output_dir, replace=True)
    # conf/train.yaml's hydra.searchpath: the user's config folders (FEWTUNE_CONFIG_DIR).
    OmegaConf.register_new_resolver("user_config_searchpath", _user_searchpath, replace=True)
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


def compose_config(overrides: list[str] = (), config_dirs: list[str | Path] = ()):
    """conf/train.yaml composed with ``overrides``, as ``python -m fewtune.train`` would compose it;
    ``config_dirs`` join FEWTUNE_CONFIG_DIR's folders on the search path (as --config-dir)."""
    from hydra import compose, initialize_config_dir

    overrides = list(overrides)
    if config_dirs:
        missing = [str(d) for d in config_dirs if not Path(d).expanduser().is_dir()]
        if missing:
            from fewtune.errors import FewtuneError

            raise FewtuneError(
                f"--config-dir {missing[0]} is not a folder; give the folder that holds task/, model/, ..."
            )
        paths = [
            f"file://{Path(d).expanduser().resolve()}" for d in config_dirs
        ] + _user_searchpath()
        overrides.append(f"hydra.searchpath=[{','.join(repr(p) for p in paths)}]")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def config_options(group: str, config_dirs: list[str | Path] = ()) -> list[str]:
    """The config names of a group (task, model, ...) in conf/ and the user's config folders."""
    folders = [CONF_DIR, *(Path(d).expanduser() for d in config_dirs), *user_config_dirs()]
    return sorted({path.stem for folder in folders for path in (folder / group).glob("*.yaml")})


def use_config_dirs(argv: list[str]) -> list[str]:
    """``argv`` without its ``--config-dir <folder>`` (or ``--config-dir=<folder>``) options, whose
    folders go first in FEWTUNE_CONFIG_DIR for this process: for commands that compose the run
    config themselves (fewtune.search_words)."""
    rest, folders = [], []
    args = iter(argv)
    for arg in args:
        if arg == "--config-dir":
            folders.append(next(args, ""))
        elif arg.startswith("--config-dir="):
            folders.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    if folders:
        missing = [f for f in folders if not Path(f).expanduser().is_dir()]
        if missing:
            raise SystemExit(
                f"error: --config-dir {missing[0]!r} is not a folder; give the folder that holds task/, ..."
            )
        before = os.environ.get(CONFIG_DIR_ENV)
        os.environ[CONFIG_DIR_ENV] = os.pathsep.join([*folders, *([before] if before else [])])
    return rest
