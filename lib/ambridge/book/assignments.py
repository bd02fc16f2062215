"""The problem sets as graded assignments (otter-grader): ``make assignments`` and ``make grade SUBMISSIONS=dir``.

Each problem set of the course (``book/course/problem-sets.md``) has an otter-grader master notebook kept as MyST
markdown, ``assignments/psN_slug.md``: an ``# ASSIGNMENT CONFIG`` block, then one ``# BEGIN QUESTION`` block per
problem, with the solution and the tests (public ones for the students, hidden ones for grading) in it. The
derivations are manual questions (their solutions appear in the instructor's version only); the computations are
autograded. ``book/course/assignments.md`` is the instructor's guide.

- :func:`release` converts a master to a notebook (jupytext) and runs ``otter assign`` on it: a student version
  (solutions and hidden tests stripped) and an autograder version with its ``*-autograder_*.zip``, under
  ``_build/assignments/<name>/``.
- :func:`grade` grades every submitted notebook of a folder with otter's non-containerised runner (no Docker, no
  download: the submission runs in this environment) against the release its metadata names, and returns one row
  per submission; :func:`write_table` writes them as CSV.

``python -m ambridge.book.assignments release|grade`` is the command line behind both ``make`` targets.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .chapters import book_root
from .errors import UsageError

__all__ = [
    "Release", "assignment_sources", "releases_dir", "release", "autograder_zip", "assignment_name", "grade",
    "write_table", "main",
]


@dataclass(frozen=True)
class Release:
    """What :func:`release` wrote for one assignment: the student notebook, the instructor's (autograder) notebook
    with solutions and every test, and the autograder zip that :func:`grade` uses."""

    name: str
    student: Path
    autograder: Path
    zip: Path


def assignment_sources(root: Path | None = None) -> list[Path]:
    """The master notebooks ``assignments/ps*.md``, in order."""
    return sorted(((root or book_root()) / "assignments").glob("ps*.md"))


def releases_dir(root: Path | None = None) -> Path:
    """Where releases go by default: ``_build/assignments/`` (git-ignored with the rest of ``_build``)."""
    return (root or book_root()) / "_build" / "assignments"


def release(source: Path, out: Path | None = None, *, run_tests: bool = True) -> Release:
    """``otter assign`` on the master ``source`` (MyST markdown), into ``out/<name>/{student,autograder}``.

    With ``run_tests`` otter also runs every test against the solutions and fails if one does not pass.
    """
    import jupytext
    import nbformat
    from otter.assign import main as otter_assign

    source = Path(source).resolve()
    name = source.stem
    target = (out or releases_dir()).resolve() / name
    shutil.rmtree(target, ignore_errors=True)
    master = target / "master" / f"{name}.ipynb"
    master.parent.mkdir(parents=True)
    nbformat.write(jupytext.read(source), master)
    otter_assign(str(master), str(target), no_pdfs=True, no_run_tests=not run_tests)
    shutil.rmtree(master.parent)
    return Release(name, target / "student" / f"{name}.ipynb", target / "autograder" / f"{name}.ipynb",
                   autograder_zip(target))


def autograder_zip(release_folder: Path) -> Path:
    """The newest ``autograder/*-autograder_*.zip`` of a release folder (otter stamps the name with the time)."""
    zips = sorted((Path(release_folder) / "autograder").glob("*-autograder_*.zip"))
    if not zips:
        raise UsageError(f"no autograder zip in {release_folder}/autograder: run `make assignments` first")
    return zips[-1]


def assignment_name(notebook: Path) -> str:
    """The assignment a notebook belongs to: otter writes it into the student version's metadata."""
    import nbformat

    name = nbformat.read(notebook, as_version=4).metadata.get("otter", {}).get("assignment_name")
    if not name:
        raise UsageError(f"{notebook} is not an assignment notebook (no otter.assignment_name in its metadata)")
    return name


def grade(submissions: Path, releases: Path | None = None) -> list[dict]:
    """Grade every ``*.ipynb`` directly in the folder ``submissions``; one row per notebook, in name order:
    ``submission``, ``assignment``, one column per autograded question (its score), ``total``, ``possible``.

    Each notebook is run from the top in this environment (otter's ``grade_submission``, no container); a notebook
    that belongs to no released assignment gets a row with its ``error`` instead of scores.
    """
    from otter.api import grade_submission

    folder = Path(submissions)
    if not folder.is_dir():
        raise UsageError(f"no folder {folder}")
    releases = Path(releases) if releases else releases_dir()
    rows = []
    for notebook in sorted(folder.glob("*.ipynb")):
        row: dict = {"submission": notebook.name}
        try:
            row["assignment"] = assignment_name(notebook)
            ag_zip = autograder_zip(releases / row["assignment"])
        except UsageError as err:
            rows.append({**row, "error": str(err)})
            continue
        result = grade_submission(str(notebook), str(ag_zip), quiet=True)
        for question, score in sorted(result.to_dict().items()):
            row[question] = score["score"]
        rows.append({**row, "total": result.total, "possible": result.possible})
    return rows


def write_table(rows: Sequence[dict], path: Path) -> Path:
    """Write the rows of :func:`grade` as CSV (questions of every assignment as columns, blank where absent)."""
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    first, last = ["submission", "assignment"], ["total", "possible", "error"]
    middle = sorted(c for c in columns if c not in first + last)
    header = [c for c in first + middle + last if c in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ambridge.book.assignments",
                                     description="The problem sets as otter-grader assignments.")
    commands = parser.add_subparsers(dest="command", required=True)
    rel = commands.add_parser("release", help="student and autograder versions of the assignments (otter assign)")
    rel.add_argument("names", nargs="*", help="assignments to release, e.g. ps1_bridge (default: all)")
    rel.add_argument("--out", type=Path, help="output folder (default: _build/assignments)")
    rel.add_argument("--no-run-tests", action="store_true", help="do not check the tests against the solutions")
    gr = commands.add_parser("grade", help="grade a folder of submitted notebooks into a table")
    gr.add_argument("submissions", type=Path, help="folder of submitted .ipynb files")
    gr.add_argument("--releases", type=Path, help="where `release` wrote (default: _build/assignments)")
    gr.add_argument("--output", type=Path, help="the CSV table (default: SUBMISSIONS/grades.csv)")
    return parser


def _release_all(names: Sequence[str], out: Path | None, run_tests: bool) -> None:
    sources = {path.stem: path for path in assignment_sources()}
    unknown = sorted(set(names) - set(sources))
    if unknown:
        raise UsageError(f"no assignment {', '.join(unknown)}; there are: {', '.join(sources)}")
    for name in names or sources:
        done = release(sources[name], out, run_tests=run_tests)
        print(f"{name}: student version {done.student}\n{' ' * len(name)}  autograder     {done.zip}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; 0 done, 2 bad command line (an unknown assignment, no release, no folder)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "release":
            _release_all(args.names, args.out, not args.no_run_tests)
            return 0
        rows = grade(args.submissions, args.releases)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = write_table(rows, args.output or args.submissions / "grades.csv")
    print(table.read_text(), end="")
    print(f"table: {table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
