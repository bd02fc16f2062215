"""The library's architecture, checked: the layer contracts (import-linter), file sizes, private names, where
command lines live, and no test hooks or code held in strings. CONTRIBUTING.md states these rules; this file is
what makes them more than a wish.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib" / "ambridge"
MODULES = sorted(p for p in LIB.rglob("*.py") if "__pycache__" not in p.parts)
MAX_LINES = 450  # about 400 is a file's natural limit; past 450 it holds two ideas
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _rel(path: Path) -> str:
    return str(path.relative_to(LIB.parent))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lint_imports(lib_parent: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(lib_parent)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_the_layer_contracts_hold():
    out = _lint_imports(LIB.parent)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and "KEPT" in out.stdout


def test_the_layer_contracts_catch_a_forbidden_import(tmp_path):
    """Plant an import of the book's machinery in the core, in a copy of the library: the contracts must break."""
    copy = tmp_path / "lib"
    shutil.copytree(LIB, copy / "ambridge", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "ambridge" / "energies.py"
    target.write_text(target.read_text() + "\nfrom .book import records  # planted\n")
    out = _lint_imports(copy)
    assert out.returncode != 0 and "BROKEN" in out.stdout, out.stdout[-3000:]
    assert "ambridge.energies -> ambridge.book.records" in out.stdout


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_module_is_too_long(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{_rel(path)} has {n} lines (limit {MAX_LINES}): it holds two ideas — split it"


def _imported_modules(tree: ast.Module, module: str, is_package: bool) -> dict[str, str]:
    """Local names bound to ambridge modules by the imports of a file: name → absolute module."""
    names = {}
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ambridge"):
                    names[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else "ambridge"
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, base)
            if source.startswith("ambridge"):
                for alias in node.names:
                    names[alias.asname or alias.name] = f"{source}.{alias.name}"
    return names


def _absolute(node: ast.ImportFrom, base: list[str]) -> str:
    if not node.level:
        return node.module or ""
    parent = base[: len(base) - node.level + 1]
    return ".".join(parent + ([node.module] if node.module else []))


def _is_module(dotted: str) -> bool:
    """A name bound to a module (``runner._x`` reaches into it), not a class (a subclass may extend its base's
    ``_parameter_constraints``, scikit-learn's convention)."""
    try:
        return importlib.util.find_spec(dotted) is not None
    except (ImportError, ValueError):
        return False


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_module_reaches_into_another_modules_private_names(path):
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    package = module if is_package else module.rsplit(".", 1)[0]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(node, module.split(".") if is_package else module.split(".")[:-1])
            if not source.startswith("ambridge"):
                continue  # other libraries' layouts are theirs (scikit-learn's parameter validation lives in a
                # private module by design)
            for alias in node.names:
                if _private(alias.name):
                    problems.append(f"from {source} import {alias.name}")
            # a private module may be used only inside its own subpackage
            private_parts = [p for p in source.split(".") if _private(p)]
            if private_parts and not source.startswith(package + "."):
                problems.append(f"from {source} import … (a private module of another package)")
    bound = {k: v for k, v in _imported_modules(tree, module, is_package).items() if _is_module(v)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            if _private(node.attr):
                problems.append(f"{node.value.id}.{node.attr}")
    assert not problems, f"{_rel(path)} uses private names of other modules: {problems}"


def _is_machinery(path: Path) -> bool:
    return path.name == "__main__.py" or "book" in path.relative_to(LIB).parts[:1]


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_command_lines_live_in_main_modules_or_the_book_package(path):
    text = path.read_text()
    if _is_machinery(path):
        return
    tree = ast.parse(text)
    uses_argparse = any(
        (isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names))
        or (isinstance(n, ast.ImportFrom) and n.module == "argparse")
        for n in ast.walk(tree)
    )
    assert not uses_argparse, f"{_rel(path)} parses a command line: move it to a __main__.py"


_CODE_IN_STRING = re.compile(r"^\s*(import \w|from [\w.]+ import |def \w+\(|class \w+[(:])", re.M)


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_no_test_hooks_or_programs_held_in_strings(path):
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            assert not _CODE_IN_STRING.search(node.value), f"{_rel(path)}: a program held in a string: {node.value[:80]!r}"
            assert not re.search(r"(^|_)TEST(_|$)", node.value), f"{_rel(path)}: a test hook: {node.value!r}"


def test_the_core_imports_neither_the_book_nor_pandas_nor_seaborn_even_lazily():
    """import-linter sees imports inside functions too; this checks the same at run time, in a fresh interpreter."""
    code = (
        "import sys, ambridge.energies, ambridge.dynamics, ambridge.sampling, ambridge.data, ambridge.special, "
        "ambridge.checks, ambridge.runtime, ambridge.store; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pandas', 'seaborn') or m.startswith('ambridge.book')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
