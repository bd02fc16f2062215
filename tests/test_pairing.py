"""Every chapter's MyST source and its committed executed notebook agree, and its presets are valid.

Fails when someone edits ``chapters/NN_slug.md`` and forgets ``python -m ambridge.execute NN`` (``jupytext --diff``
cannot be the check: it exits 0 even when the files differ).
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from ambridge.run import CHAPTER_PATTERN, chapter_parameters, chapters_dir

CHAPTERS = chapters_dir()
SOURCES = sorted(p for p in CHAPTERS.glob("*.md") if CHAPTER_PATTERN.match(p.stem))
STEMS = [p.stem for p in SOURCES]


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells if c.cell_type in ("code", "markdown")]


def _tagged(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]


def test_there_are_chapters():
    assert SOURCES, f"no NN_slug.md chapters in {CHAPTERS}"


def test_every_md_has_an_ipynb_and_back():
    notebooks = {p.stem for p in CHAPTERS.glob("*.ipynb") if CHAPTER_PATTERN.match(p.stem)}
    assert set(STEMS) - notebooks == set(), "chapters never executed: run python -m ambridge.execute NN"
    assert notebooks - set(STEMS) == set(), "notebooks without a .md source"


@pytest.mark.parametrize("stem", STEMS)
def test_ipynb_has_the_cells_of_the_md(stem):
    source = jupytext.read(CHAPTERS / f"{stem}.md")
    executed = nbformat.read(CHAPTERS / f"{stem}.ipynb", as_version=4)
    assert _cells(executed) == _cells(source), f"{stem}.md changed since it was executed: python -m ambridge.execute {stem}"


@pytest.mark.parametrize("stem", STEMS)
def test_parameters_cell_is_tagged_in_both(stem):
    source = jupytext.read(CHAPTERS / f"{stem}.md")
    executed = nbformat.read(CHAPTERS / f"{stem}.ipynb", as_version=4)
    assert len(_tagged(source)) == 1, "the .md needs exactly one cell tagged `parameters`"
    assert _tagged(executed) == _tagged(source)
    assert source.cells[_tagged(source)[0]].cell_type == "code"


@pytest.mark.parametrize("stem", STEMS)
def test_every_code_cell_was_executed_without_error(stem):
    executed = nbformat.read(CHAPTERS / f"{stem}.ipynb", as_version=4)
    for i, cell in enumerate(executed.cells):
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"cell {i + 1} never ran: python -m ambridge.execute {stem}"
        if "raises-exception" not in cell.metadata.get("tags", []):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"cell {i + 1} failed: {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.parametrize("stem", STEMS)
def test_papermill_sees_every_parameter(stem):
    """papermill's line parser (``--help-notebook``, its unknown-name warning) gives up on a line holding two
    ``=``, e.g. a comment saying ``>= 0``: write "at least 0" instead."""
    from papermill.translators import PythonTranslator

    source = jupytext.read(CHAPTERS / f"{stem}.md")
    seen = {p.name for p in PythonTranslator.inspect(source.cells[_tagged(source)[0]])}
    missing = set(chapter_parameters(CHAPTERS / f"{stem}.md")) - seen
    assert not missing, f"papermill cannot parse the lines of {sorted(missing)} (a '=' in the comment?)"


@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_exist_and_name_only_real_parameters(stem, preset):
    path = CHAPTERS / "presets" / stem / f"{preset}.yaml"
    assert path.is_file(), f"missing preset {path.relative_to(CHAPTERS.parent)}"
    values = yaml.safe_load(path.read_text()) or {}
    assert isinstance(values, dict), f"{path.name} must be a mapping of parameter: value"
    unknown = set(values) - set(chapter_parameters(CHAPTERS / f"{stem}.md"))
    assert not unknown, f"{path.name} sets parameters the chapter does not have: {sorted(unknown)}"


@pytest.mark.parametrize("stem", STEMS)
def test_quick_preset_is_the_defaults(stem):
    """The defaults ARE the quick preset: the committed notebook shows exactly what ``-f quick`` runs."""
    path = CHAPTERS / "presets" / stem / "quick.yaml"
    if not path.is_file():
        pytest.fail(f"missing preset {path.relative_to(CHAPTERS.parent)}")
    assert (yaml.safe_load(path.read_text()) or {}) == chapter_parameters(CHAPTERS / f"{stem}.md")
