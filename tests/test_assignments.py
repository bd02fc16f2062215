"""The problem sets as otter-grader assignments (``make assignments``, ``make grade``): the round trip.

Each master (``assignments/psN_slug.md``) is released with otter assign; the student version must hold no
solution and no hidden test; grading the instructor's version (the reference solutions) must give full marks, and
a planted wrong answer must lose exactly the points of its question. Grading runs each notebook in a kernel, so the
six notebooks are graded once, in one call of the command line, and the tests read its table.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from ambridge.book.assignments import assignment_sources, main, release

ROOT = Path(__file__).resolve().parents[1]
SOURCES = assignment_sources(ROOT)
NAMES = [path.stem for path in SOURCES]

#: One wrong answer per assignment: (question, text of the reference solution, the wrong text planted instead).
PLANTED = {
    "ps1_bridge": ("q1", "dim / 2 * math.log(math.pi / beta)", "dim / 2 * math.log(2 * math.pi / beta)"),
    "ps2_memories": ("q4", "alpha / (alpha + i - 1)", "alpha / (alpha + i)"),
    "ps3_capacity_attention": ("q4", "math.sqrt(dim) * norms", "norms"),
}

FENCE = re.compile(r"^```otter\n(.*?)^```\n", re.M | re.S)


def _questions(source: Path) -> dict[str, dict]:
    """The question configs of a master, by name: {name, points, manual}."""
    configs = [m.group(1) for m in FENCE.finditer(source.read_text())]
    questions = {}
    for text in configs:
        if text.startswith("# BEGIN QUESTION"):
            fields = dict(line.split(": ", 1) for line in text.splitlines()[1:])
            questions[fields["name"]] = {"points": float(fields["points"]), "manual": fields.get("manual") == "true"}
    return questions


def _solution_texts(source: Path) -> list[str]:
    """Every piece of solution in a master: code lines marked ``# SOLUTION`` (their right-hand side for an
    assignment), code between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` inside a cell, and the prose answers of
    the manual questions (text inside an ``otter`` solution block and outside any code cell)."""
    texts, in_cell, code_block, prose_block = [], False, False, False
    for line in source.read_text().splitlines():
        stripped = line.strip()
        if line.startswith("```{code-cell}"):
            in_cell = True
        elif in_cell and line == "```":
            in_cell = False
        elif stripped == "# BEGIN SOLUTION":
            code_block, prose_block = in_cell, not in_cell
        elif stripped == "# END SOLUTION":
            code_block = prose_block = False
        elif in_cell and stripped.endswith("# SOLUTION"):
            code = stripped[: -len("# SOLUTION")].strip()
            assignment = re.match(r"[\w.]+\s*=(?!=)\s*(.*)", code)
            texts.append(assignment.group(1) if assignment else code)
        elif (code_block or (prose_block and not in_cell)) and stripped and not stripped.startswith("```"):
            texts.append(stripped)
    return [text for text in texts if len(text) > 6]


def _test_names(source: Path, hidden: bool) -> list[str]:
    cells = re.findall(r'^""" # BEGIN TEST CONFIG\n(.*?)^""" # END TEST CONFIG\ndef (\w+)', source.read_text(), re.M | re.S)
    return [name for config, name in cells if ("hidden: true" in config) == hidden]


def test_one_assignment_per_problem_set_with_its_problems():
    problem_sets = (ROOT / "book" / "course" / "problem-sets.md").read_text()
    parts = re.split(r"^\(ps-\d+\)=$", problem_sets, flags=re.M)[1:]
    assert len(parts) == len(SOURCES) == 3, NAMES
    for part, source in zip(parts, SOURCES):
        titles = re.findall(r"^\*\*(\d+\. [^*]+)\*\*", part, re.M)
        assert titles, f"no problems found in {source.stem}'s problem set"
        text = source.read_text()
        assert [t for t in titles if f"**{t}**" not in text] == [], f"{source.name} lacks problems of its set"
        assert len(_questions(source)) == len(titles)
        assert any(not q["manual"] for q in _questions(source).values())


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("releases")
    return out, {source.stem: release(source, out, run_tests=False) for source in SOURCES}


@pytest.mark.parametrize("name", NAMES)
def test_the_student_version_holds_no_solution_and_no_hidden_test(released, name):
    _, releases = released
    source = ROOT / "assignments" / f"{name}.md"
    student = releases[name].student.read_text()
    instructor = releases[name].autograder.read_text()
    solutions = _solution_texts(source)
    assert len(solutions) >= 5
    as_json = [json.dumps(text, ensure_ascii=False)[1:-1] for text in solutions]  # how the text appears inside the .ipynb
    assert [t for t in as_json if t in student] == [], "solutions left in the student version"
    assert [t for t in as_json if t not in instructor] == [], "the check reads the wrong notebook"
    hidden, public = _test_names(source, hidden=True), _test_names(source, hidden=False)
    assert hidden and public
    assert [t for t in hidden if t in student] == [], "hidden tests left in the student version"
    assert [t for t in public if t not in student] == [], "the students' public checks are missing"
    assert releases[name].zip.is_file()


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory):
    """Grade, in one call of the command line, each reference solution and each planted wrong answer."""
    out, releases = released
    folder = tmp_path_factory.mktemp("submissions")
    for name, done in releases.items():
        shutil.copy(done.autograder, folder / f"{name}-reference.ipynb")
        question, right, wrong = PLANTED[name]
        notebook = nbformat.read(done.autograder, as_version=4)
        cells = [cell for cell in notebook.cells if cell.cell_type == "code" and right in cell.source]
        assert len(cells) == 1, f"the planted answer of {name} must replace exactly one cell's text"
        cells[0].source = cells[0].source.replace(right, wrong)
        nbformat.write(notebook, folder / f"{name}-planted-{question}.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), folder / "not-an-assignment.ipynb")
    assert main(["grade", str(folder), "--releases", str(out)]) == 0
    with open(folder / "grades.csv", newline="") as handle:
        return {row["submission"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_solution_scores_full_marks(graded, name):
    row = graded[f"{name}-reference.ipynb"]
    autograded = {q: c["points"] for q, c in _questions(ROOT / "assignments" / f"{name}.md").items() if not c["manual"]}
    assert row["assignment"] == name
    assert {q: float(row[q]) for q in autograded} == autograded
    assert float(row["total"]) == float(row["possible"]) == sum(autograded.values())


@pytest.mark.parametrize("name", NAMES)
def test_a_planted_wrong_answer_loses_exactly_its_points(graded, name):
    question, _, _ = PLANTED[name]
    row = graded[f"{name}-planted-{question}.ipynb"]
    points = _questions(ROOT / "assignments" / f"{name}.md")[question]["points"]
    assert float(row[question]) == 0
    assert float(row["total"]) == float(row["possible"]) - points


def test_a_notebook_of_no_assignment_gets_an_error_row(graded):
    row = graded["not-an-assignment.ipynb"]
    assert "not an assignment notebook" in row["error"] and not row["total"]
