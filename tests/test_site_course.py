"""The course pages cover the book as it stands in ``_toc.yml``, and every chapter carries runnable exercises.

When a chapter joins the table of contents (or moves from its placeholder in ``book/results/`` to ``chapters/``),
these fail until the syllabus links it and, for a written chapter, until it has its exercises.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from sitecheck import is_chapter, toc_pages  # noqa: E402

CHAPTERS = [page for page in toc_pages() if is_chapter(page)]
WRITTEN = [page for page in CHAPTERS if page.startswith("chapters/")]
SYLLABUS = (ROOT / "book" / "course" / "syllabus.md").read_text()
EXERCISE = re.compile(r"^```\{exercise\}.*?\n:label: (\S+)", re.M)
SOLUTION = re.compile(r"^```\{solution-start\} (\S+)\n(.*?)^```\{solution-end\}", re.M | re.S)


def test_the_toc_has_the_six_chapters():
    assert len(CHAPTERS) == 6, CHAPTERS


@pytest.mark.parametrize("docname", CHAPTERS)
def test_the_syllabus_assigns_every_chapter(docname):
    assert f"{{doc}}`/{docname}`" in SYLLABUS, f"the syllabus has no week reading {docname}"


def test_the_syllabus_hands_out_every_problem_set():
    problem_sets = (ROOT / "book" / "course" / "problem-sets.md").read_text()
    labels = re.findall(r"^\((ps-\d+)\)=$", problem_sets, re.M)
    assert labels == ["ps-1", "ps-2", "ps-3"]
    assert all(f"{{ref}}`{label}`" in SYLLABUS for label in labels)


@pytest.mark.parametrize("docname", WRITTEN)
def test_chapter_has_three_exercises_with_hidden_solutions_that_run(docname):
    source = (ROOT / f"{docname}.md").read_text()
    exercises = EXERCISE.findall(source)
    solutions = {label: body for label, body in SOLUTION.findall(source)}
    assert len(exercises) >= 3, f"{docname} has {len(exercises)} exercises; the book asks for at least three"
    for label in exercises:
        assert label in solutions, f"exercise {label} has no gated solution ({{solution-start}} … {{solution-end}})"
        body = solutions[label]
        assert body.lstrip().startswith(":class: dropdown"), f"the solution of {label} is not hidden (dropdown)"
        assert "```{code-cell}" in body, f"the solution of {label} has no code cell, so CI runs nothing of it"
