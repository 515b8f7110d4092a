"""The package's layout: one folder per concept, no import loops, no private names across modules.

The import graph is read from the source (every ``import`` and ``from ... import``, at module
level or inside a function: a lazy import is still a dependency), so a loop is found whichever
module happens to be imported first.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "fewtune"
MAX_TOP_LEVEL_MODULES = 11  # the commands (train, evaluate, predict, ensemble, ...), errors, config


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(fewtune module, names taken from it) for every import in the module's source."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [
                (alias.name, []) for alias in node.names if alias.name.split(".")[0] == "fewtune"
            ]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            if base.split(".")[0] != "fewtune":
                continue
            names = [alias.name for alias in node.names]
            submodules = [
                n for n in names if f"{base}.{n}" in MODULES
            ]  # from fewtune.run import build
            found += [(f"{base}.{n}", []) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                found.append((base, rest))
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _ in imported(name, path):
            while target not in MODULES and "." in target:  # an attribute path: its module
                target = target.rsplit(".", 1)[0]
            if target != name and target in MODULES:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_loop_and_passes_a_tree():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_no_module_imports_another_modules_private_names():
    leaks = []
    for name, path in MODULES.items():
        for source, names in imported(name, path):
            leaks += [
                f"{name}: from {source} import {n}"
                for n in names
                if n.startswith("_") and source != name
            ]
        # and module._private through an imported module
        aliases = {}
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("fewtune")
            ):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("fewtune") and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                leaks.append(f"{name}: {aliases[node.value.id]}.{node.attr}")
    assert leaks == []


def test_the_top_level_holds_only_the_commands_and_a_few_core_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_every_module_imports_on_its_own():
    """Each module imported with no other fewtune module loaded before it (one interpreter,
    fewtune's modules dropped from sys.modules between imports; third-party ones stay)."""
    script = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "fewtune" or m.startswith("fewtune.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    names = sorted(MODULES)
    done = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_the_train_command_and_its_logging_setup_import_no_lightning():
    """Lightning imported before Hydra configures logging adds a console handler of its own, and
    its info lines would reach the console (tests/test_first_run.py shows the effect)."""
    check = (
        "import sys, fewtune.train, fewtune.run.console; print('pytorch_lightning' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=300
    )
    assert done.stdout.strip() == "False", done.stderr[-2000:]
