"""Chapters keep the argument: short code cells, no functions defined outside exercise solutions, the parameters
cell visible and the validation cell (the one after it) collapsed on the site. Anything longer belongs in the
library, where it is tested (CONTRIBUTING.md, "The cells").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for p in (ROOT / "chapters").glob("*.md") if re.match(r"^\d+_", p.stem))
MAX_LINES = 15  # a code cell's non-blank lines
MAX_FIGURE_LINES = 30  # a cell that draws a figure may say more about its axes
FIGURE = re.compile(r"plt\.(subplots|figure|subplot_mosaic)\(")


def _code_cells(md: Path):
    """(index, cell, inside an exercise solution) for every code cell of a chapter."""
    in_solution = False
    for i, cell in enumerate(jupytext.read(md).cells):
        if cell.cell_type == "markdown":
            for marker in re.findall(r"\{solution-(start|end)\}", cell.source):  # in order: one may close, next open
                in_solution = marker == "start"
            continue
        if cell.cell_type == "code":
            yield i, cell, in_solution


def _lines(source: str) -> int:
    return sum(1 for line in source.splitlines() if line.strip())


def _only_imports(source: str) -> bool:
    body = ast.parse(source).body
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_code_cells_are_short(md):
    cells = list(_code_cells(md))
    params = next(k for k, (_, c, _) in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    long = []
    for k, (i, cell, in_solution) in enumerate(cells):
        if k in (params, params + 1) or in_solution:  # the parameters and their validation
            continue
        if _only_imports(cell.source):
            continue
        limit = MAX_FIGURE_LINES if FIGURE.search(cell.source) else MAX_LINES
        if _lines(cell.source) > limit:
            long.append(f"cell {i} ({_lines(cell.source)} lines, limit {limit}): {cell.source.splitlines()[0][:60]}")
    assert not long, f"{md.name}: move the work into the library: " + "; ".join(long)


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_no_functions_or_classes_defined_outside_exercise_solutions(md):
    found = []
    for i, cell, in_solution in _code_cells(md):
        if in_solution:
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.append(f"cell {i}: {node.name}")
    assert not found, f"{md.name} defines {found}: put them in the library, tested, and import them"


@pytest.mark.parametrize("md", SOURCES, ids=lambda p: p.stem)
def test_parameters_visible_and_validation_collapsed(md):
    cells = list(_code_cells(md))
    params = [k for k, (_, c, _) in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{md.name}: exactly one cell tagged parameters"
    k = params[0]
    assert not {"hide-cell", "hide-input", "remove-cell", "remove-input"} & set(cells[k][1].metadata.get("tags", []))
    validation = cells[k + 1][1]
    assert "hide-cell" in validation.metadata.get("tags", []), f"{md.name}: tag the validation cell hide-cell"
    assert "check_" in validation.source or "from_parameters" in validation.source, \
        f"{md.name}: the cell after the parameters should validate them"
