"""Every command the docs quote still works, without training anything.

- `python -m fewtune.train ...`: the overrides compose with Hydra's compose API against conf/
  (a multirun's sweeps: every value of each, one at a time), so an override naming a config
  group option or a key that no longer exists fails here, not in a reader's shell.
- The other commands: their own argument parser accepts the quoted arguments (the command is
  stopped right after parsing), or, for those that take a run's overrides, those compose.
- `make <target>`: a target of the Makefile. Relative links of README.md point at files.
- A table under a `python -m fewtune.table results/...` command is what that command prints
  today from the archived runs: no number in the results pages is copied by hand.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import re
from contextlib import redirect_stdout
from glob import glob

import pytest

from doc_commands import (
    PLACEHOLDER,
    ROOT,
    Command,
    commands,
    doc_files,
    expand_braces,
    make_targets,
    mentions,
    relative_links,
    snippets,
    statements,
    table_after,
)

DOCS = doc_files()
# Pages whose commands need what the page sets up first (a user's own config folder, a SLURM
# cluster): their own tests run them (tests/test_custom_tasks.py, tests/cluster/).
SET_UP_BY_THEIR_OWN_TESTS = {"custom-tasks.md", "slurm.md"}
COMMANDS = [
    c for path in DOCS if path.name not in SET_UP_BY_THEIR_OWN_TESTS for c in commands(path)
]
# Commands whose arguments are a run's Hydra overrides, with what they put before them.
HYDRA_COMMANDS = {
    "fewtune.train": [],
    "fewtune.bench.profile_step": ["experiment=cpu", "task=sst2", "method=prompt", "logger=none"],
}
# Hydra's own flags of `python -m fewtune.train`: those that take a value, and those that do not.
HYDRA_FLAGS_WITH_VALUE = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--config-path",
    "-cp",
    "--experimental-rerun",
}
HYDRA_FLAGS = {
    "-m",
    "--multirun",
    "--resolve",
    "--help",
    "-h",
    "--hydra-help",
    "--info",
    "-i",
    "--version",
    "--shell-completion",
    "-sc",
    "--run",
    "-r",
}


@pytest.fixture(scope="module")
def compose():
    """Hydra's compose against the project's conf/, with the hydra node (so hydra.* overrides
    count); the same override list is composed once however many pages quote it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from fewtune.config import CONF_DIR

    composed = {}

    def compose_once(overrides: list[str]):
        key = tuple(overrides)
        if key not in composed:
            composed[key] = hydra_compose(
                "train", overrides=list(overrides), return_hydra_config=True
            )
        return composed[key]

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        yield compose_once


def is_group(key: str) -> bool:
    """A config group (task, method, hydra/launcher, ...), whose options are files of their own."""
    return (ROOT / "conf" / key.lstrip("+~")).is_dir()


def overrides_of(command: Command) -> tuple[list[str], bool]:
    """(overrides, multirun) of a `fewtune.train`-style command, Hydra's flags taken off."""
    overrides, multirun, skip = [], False, False
    for arg in command.args:
        if skip:
            skip = False
        elif arg in HYDRA_FLAGS_WITH_VALUE:
            skip = True
        elif arg in HYDRA_FLAGS:
            multirun |= arg in ("-m", "--multirun")
        else:
            overrides.append(arg)
    return overrides, multirun


def sweep_variants(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists to compose: every sweep at its first value, then each other option of
    each group sweep in turn (as many compositions as options, not the grid's product). Other
    values of a plain key (seed=13,21,...) change no key, so the first one stands for them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for override in parsed:
        if override.is_sweep_override():
            assert multirun, f"{override.input_line} sweeps several values: it needs -m"
            choices.append(
                [f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()]
            )
        else:
            choices.append([override.input_line])
    base = [values[0] for values in choices]
    variants = [base]
    for i, (override, values) in enumerate(zip(parsed, choices)):
        if is_group(override.get_key_element()):
            variants += [base[:i] + [value] + base[i + 1 :] for value in values[1:]]
    return variants


def check_overrides(compose, overrides: list[str], multirun: bool = False) -> None:
    for variant in sweep_variants(overrides, multirun):
        compose(variant)


class Parsed(Exception):
    """Raised right after a command's parser accepted its arguments: nothing runs."""

    def __init__(self, namespace):
        self.namespace = namespace


@pytest.fixture
def parse_only(monkeypatch):
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(parser, args=None, namespace=None):
        raise Parsed(original(parser, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)


def parse(command: Command) -> argparse.Namespace:
    # usage notation: [optional] brackets go, and `key=value` stands for any override
    args = [a.strip("[]") if a.startswith("[") or a.endswith("]") else a for a in command.args]
    args = [a for a in args if a not in ("key=value", "...", "")]
    module = importlib.import_module(command.module)
    if not hasattr(module, "main"):  # a package run as python -m: its __main__
        module = importlib.import_module(command.module + ".__main__")
    try:
        module.main(args)
    except Parsed as parsed:
        return parsed.namespace
    except SystemExit as exit_:
        pytest.fail(f"{command}: its parser refused the arguments ({exit_})")
    pytest.fail(f"{command}: main() returned without parsing arguments")


def _id(command: Command) -> str:
    return f"{command.where} {command.module}"


def test_the_docs_quote_commands_and_all_of_them_are_read():
    """Every `python -m fewtune...` in the docs is in a code block or span that this test reads."""
    assert len(COMMANDS) > 50
    for path in (p for p in DOCS if p.name not in SET_UP_BY_THEIR_OWN_TESTS):
        quoted = sum(len(re.findall(r"python\s+-m\s+fewtune\b", s.code)) for s in snippets(path))
        assert quoted == mentions(path), (
            f"{path.relative_to(ROOT)} names a command outside code (or in a way not read)"
        )


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.module in HYDRA_COMMANDS], ids=_id)
def test_hydra_commands_compose(command, compose):
    from hydra.errors import HydraException

    overrides, multirun = overrides_of(command)
    try:
        check_overrides(compose, HYDRA_COMMANDS[command.module] + overrides, multirun)
    except HydraException as err:  # ConfigCompositionException, MissingConfigException, ...
        pytest.fail(
            f"{command}\n  does not compose: {type(err).__name__}: {str(err).splitlines()[0]}"
        )


OTHER = sorted(
    {c for c in COMMANDS if c.module not in HYDRA_COMMANDS}, key=lambda c: (c.module, c.where)
)


@pytest.mark.parametrize("command", OTHER, ids=_id)
def test_other_commands_parse_their_arguments(command, compose, parse_only, monkeypatch):
    assert importlib.util.find_spec(command.module), f"{command}: no module {command.module}"
    if not command.args:
        return  # named in prose: the module exists
    if command.module == "fewtune.search_words":
        search = [a for a in command.args if a.startswith("search.")]
        check_overrides(compose, [a for a in command.args if not a.startswith("search.")])
        module = importlib.import_module(command.module)
        monkeypatch.setattr(module, "search", lambda *a, **k: (_ for _ in ()).throw(Parsed(search)))
        with pytest.raises(Parsed):  # its own settings are accepted (an unknown one exits first)
            module.main(search)
        return
    namespace = parse(command)
    for name in ("overrides",):  # key=value changes to a run's config: keys the config has
        for override in getattr(namespace, name, None) or []:
            key = override.split("=", 1)[0].lstrip("+~")
            assert "=" in override and key.split(".")[0] in compose([]), (
                f"{command}: {override} is no key of the config"
            )
    if command.module == "fewtune.sample":
        for task in namespace.tasks:
            assert (ROOT / "conf" / "task" / f"{task}.yaml").is_file(), f"{command}: no task {task}"


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    quoted = [(where, t) for path in DOCS for where, t in make_targets(path) if t != PLACEHOLDER]
    assert quoted
    for where, target in quoted:
        assert target in targets, f"{where}: make {target} is not a target of the Makefile"


@pytest.mark.parametrize("name", ["README.md", "results/README.md", "benchmarks/README.md"])
def test_relative_links_point_at_files(name):
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"no {name}")
    for target in relative_links(path):
        assert (path.parent / target).exists(), f"{name} links to {target}, which does not exist"


def _table_commands():
    for path in DOCS:
        for snippet in snippets(path):
            rows = table_after(path, snippet) if snippet.fenced else []
            for words in statements(snippet.code) if rows else []:
                dirs = [w for w in words[3:] if not w.startswith("--")]
                # tables of archived runs only: those of outputs/ are quoted as they were printed
                if words[:3] == ["python", "-m", "fewtune.table"] and dirs[0].startswith(
                    "results/"
                ):
                    yield pytest.param(words[3:], rows, id=snippet.where)


@pytest.mark.parametrize(("args", "rows"), list(_table_commands()))
def test_results_tables_are_what_the_table_command_prints(args, rows, tmp_path):
    from fewtune.table import main

    dirs, flags, it = [], [], iter(args)
    for arg in it:
        if arg == "--out":
            next(it)
        elif arg.startswith("--"):
            flags.append(arg)
        else:
            dirs += [m for word in expand_braces(arg) for m in sorted(glob(str(ROOT / word)))]
    assert dirs and all(d.startswith(str(ROOT / "results")) for d in dirs), (
        f"not archived runs: {args}"
    )
    out = io.StringIO()
    with redirect_stdout(out):
        main([*dirs, *flags, "--out", str(tmp_path)])
    printed = [line for line in out.getvalue().splitlines() if line.startswith("|")]
    assert printed == rows


def test_a_wrong_option_fails_the_check(compose):
    """The check can fail: a group option or a key that does not exist does not compose."""
    from hydra.errors import HydraException

    check_overrides(compose, ["task=sst2", "method=prompt", "trainer.max_steps=5"])
    for wrong in (["method=promt"], ["optimizer.lrr=1e-5"], ["task=sst2,nope"], ["+seed=1"]):
        with pytest.raises(HydraException):
            check_overrides(compose, wrong, multirun=True)
    with pytest.raises(AssertionError, match="needs -m"):
        check_overrides(compose, ["seed=13,21"], multirun=False)


def test_every_module_is_in_the_api_reference():
    """A new or moved module gets its page: every module of src/fewtune is a `::: fewtune.x`."""
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: (fewtune[\w.]*)", page.read_text(), re.MULTILINE))
    modules = set()
    for path in (ROOT / "src" / "fewtune").rglob("*.py"):
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__" and len(parts) > 1:
            modules.add(".".join(parts))
    missing = sorted(modules - documented)
    assert not missing, f"modules with no API page (add them to docs/api/*.md): {missing}"
    assert not documented - modules, (
        f"API pages name modules that do not exist: {documented - modules}"
    )


# Files the docs name that are not this project's: LM-BFF's sampler script, the data's checksums.
ELSEWHERE = {"tools/generate_k_shot_data.py", "checksums/lm-bff-k-shot.md5"}


def _named_files(path):
    """`data/encoding.py`, `src/fewtune/resume.py`, `conf/trainer/ddp.yaml`, `tests/test_x.py::test`."""
    for snippet in snippets(path):
        code = snippet.code.split("::")[0].split(":")[0].strip()
        if (
            snippet.fenced
            or "<" in code
            or " " in code
            or code in ELSEWHERE
            or code.startswith(".")
        ):
            continue
        if re.fullmatch(r"[\w./-]+\.(py|yaml|ipynb|json|md5)", code):
            yield snippet.where, code


def _exists(name: str) -> bool:
    src = ROOT / "src" / "fewtune"
    if "/" not in name:  # a bare module name: anywhere in the package or the tests
        # (bare .json/.yaml names are files of a run's folder: metrics.json, overrides.yaml)
        return not name.endswith(".py") or any(
            any(base.rglob(name)) for base in (src, ROOT / "tests")
        )
    relative = name.removeprefix("src/").removeprefix("fewtune/")
    return (ROOT / name).exists() or (src / relative).exists()


def test_files_the_docs_name_exist():
    """A module that moved takes its mentions with it: every file named in inline code exists."""
    missing = [
        f"{where}: {name}"
        for path in DOCS
        for where, name in _named_files(path)
        if not _exists(name)
    ]
    assert not missing, "the docs name files that do not exist:\n" + "\n".join(missing)


def _imports(name: str) -> bool:
    """``fewtune.a.b.c``: the longest prefix that is a module imports, and the rest are attributes."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[i:]:
            obj = getattr(obj, attribute, None)
        return obj is not None
    return False


def test_modules_the_docs_name_import():
    """`fewtune.x.y` (a module, or a name in one) in inline code still imports."""
    names = [
        (s.where, s.code.strip())
        for path in DOCS
        for s in snippets(path)
        if not s.fenced and re.fullmatch(r"fewtune(\.\w+)+", s.code.strip())
    ]
    assert names
    missing = [f"{where}: {name}" for where, name in names if not _imports(name)]
    assert not missing, "the docs name modules that do not import:\n" + "\n".join(missing)


def test_the_site_builds_strict(tmp_path):
    """`make docs` in the suite: a broken link or anchor, a page missing from the nav or an API
    page naming a module that does not import fails `mkdocs build --strict` (without --quiet,
    which hides the warnings that --strict counts)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("mkdocs")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
