"""Rerun a chapter with new parameters: ``python -m ambridge.run CHAPTER [-p NAME VALUE]... [-f PRESET]...``.

This is what ``make run`` calls (``book/reference/rerunning.md`` is the reader's guide). The chapter's MyST-markdown
source is executed with papermill into ``runs/<slug>/`` (git-ignored). Beside the executed notebook go an HTML copy
of it (:func:`html_copy`, to read in a browser) and a JSON run record (parameters, commit, hardware, wall time,
status, and the numbers the chapter published with :func:`ambridge.book.records.publish_results`); the notebook's
and the HTML copy's paths are printed, one a line. Each run of a sweep is one such run (:mod:`ambridge.book.sweep`,
``book/reference/scale.md``).

Why not plain papermill: it cannot read ``.md``, and it only *warns* on a misspelt parameter name, so a typo would
silently run the defaults. Here an unknown name is an error before anything runs (:mod:`ambridge.book.params`), and
a chapter that stops on a bad value shows one line (the chapter's own :class:`~ambridge.checks.ParameterError`
message), not a traceback.

Exit codes: 0 ran, 1 the notebook failed, 2 bad command line (unknown chapter, parameter or preset).
``python -m ambridge.book.run`` is the same command.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .chapters import book_root, read_chapter, resolve_chapter
from .errors import UsageError
from .params import jsonable_parameters, merge_parameters, parameters_cell, parameters_hash, parse_parameters
from .presets import load_preset, preset_names, presets_dir

__all__ = ["default_output", "describe_failure", "html_copy", "main"]


def default_output(md: Path, parameters: dict[str, Any]) -> Path:
    """``runs/<slug>/<YYYYmmdd-HHMMSS>-<hash>.ipynb`` under the book's root."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return book_root() / "runs" / md.stem / f"{stamp}-{parameters_hash(parameters)}.ipynb"


def describe_failure(err, output: Path) -> str:
    """One or two lines for a failed cell (a papermill ``PapermillExecutionError``): the chapter's own message for
    a ParameterError, else the error, the cell and its first line; then where the partial notebook is."""
    where = f"partially executed notebook: {output}"
    if err.ename == "ParameterError":
        return f"error: {err.evalue}\n{where}"
    first_line = next((line for line in err.source.splitlines() if line.strip()), "")
    return (
        f"error: {err.ename}: {err.evalue}\n"
        f"in cell {err.cell_index + 1} (In [{err.exec_count}]) starting `{first_line.strip()}`\n{where}"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ambridge.run",
        description="Rerun a chapter of the book with new parameters, into runs/<slug>/ (git-ignored).",
        epilog=(
            "examples:\n"
            "  python -m ambridge.run 01 --list            show chapter 1's parameters and presets\n"
            "  python -m ambridge.run 01 -p beta 8         one parameter changed\n"
            "  python -m ambridge.run 01 -f paper --device cuda   the paper's scale on a GPU\n\n"
            "Values are read as YAML: 8 is an int, 8.0 a float, true a bool, other text a string.\n"
            "Exit codes: 0 ran, 1 the notebook failed, 2 bad command line."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("chapter", help='chapter number ("01" or "1"), name ("01_energy_is_nll") or path to its .md')
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="set a parameter (repeatable; applied after presets)",
    )
    parser.add_argument(
        "-f", "--preset", action="append", default=[], metavar="PRESET",
        help="a preset: a YAML file, or a name such as 'paper' for chapters/presets/<slug>/paper.yaml "
        "(repeatable; merged in order)",
    )
    parser.add_argument("--device", metavar="cpu|cuda|auto", help="set the chapter's `device` parameter")
    parser.add_argument("-o", "--output", type=Path, help="executed notebook path (default: runs/<slug>/<time>-<hash>.ipynb)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or progress messages")
    parser.add_argument("-v", "--verbose", action="store_true", help="on failure, also print the full traceback")
    parser.add_argument("--list", action="store_true", help="print the chapter's parameters and presets, run nothing")
    return parser


def _list(md: Path) -> None:
    """Print the parameters cell as the chapter writes it (with its comments) and the presets."""
    print(f"{md.stem}: parameters (defaults = quick preset)\n")
    print(parameters_cell(read_chapter(md)).source.rstrip() + "\n")
    print("presets: " + (", ".join(preset_names(presets_dir(md))) or "(none)"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ran, 1 the notebook failed, 2 bad command line)."""
    args = _parser().parse_args(argv)
    try:
        md = resolve_chapter(args.chapter)
        if args.list:
            _list(md)
            return 0
        defaults = parse_parameters(parameters_cell(read_chapter(md)).source)
        presets = [(preset, load_preset(preset, md)) for preset in args.preset]
        chosen = merge_parameters(defaults, presets, args.parameter, args.device)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    parameters = {**defaults, **chosen}
    output = (args.output or default_output(md, parameters)).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    if "MPLBACKEND" in os.environ:  # the kernel would then emit no figures at all, silently
        os.environ.pop("MPLBACKEND")
    if not args.quiet:
        changed = ", ".join(f"{k}={v!r}" for k, v in chosen.items()) or "defaults"
        print(f"running {md.stem} with {changed}", file=sys.stderr)

    from .records import RESULTS_ENV, record_device, run_record

    # The chapter's kernel inherits this variable; its publish_results(...) writes the headline numbers there.
    results_path = output.with_suffix(".results.json")
    results_path.unlink(missing_ok=True)
    os.environ[RESULTS_ENV] = str(results_path)
    try:
        code, result = _execute(md, output, chosen, cwd=md.parent, quiet=args.quiet, verbose=args.verbose)
    finally:
        os.environ.pop(RESULTS_ENV, None)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results_path.unlink(missing_ok=True)
    record = run_record(
        jsonable_parameters(parameters), wall_time_s=result.pop("wall_time_s"), device=record_device(parameters),
        chapter=md.stem, overrides=jsonable_parameters(chosen), notebook=str(output), results=results, **result,
    )
    output.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(output)
    if output.is_file():  # also after a failure: the partial notebook shows where it stopped
        print(html_copy(output))
    return code


def html_copy(notebook: Path) -> Path:
    """Write ``notebook`` as HTML beside it (nbconvert's lab template, figures embedded) and return the path, so a
    rerun can be read in a browser without Jupyter. Equations are typeset by MathJax from its CDN when online."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


class _QuietPapermill(logging.Filter):
    """Drop papermill's parameter-inference warnings: :func:`~ambridge.book.params.merge_parameters` has already
    checked every name against the cell's `ast`, and papermill's line parser gives up on comments holding an ``=``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Unable to parse line") or message.startswith("Passed unknown parameter"))


def _execute(md: Path, output: Path, chosen: dict, *, cwd: Path, quiet: bool, verbose: bool) -> tuple[int, dict]:
    """Execute with papermill; return the exit code and the record fields (wall time, status, error)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    for name in ("papermill", "papermill.translators"):  # a filter only sees records of its own logger
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietPapermill) for f in logger.filters):
            logger.addFilter(_QuietPapermill())
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            read_chapter(md), str(output), parameters=jsonable_parameters(chosen), kernel_name="python3",
            progress_bar=not quiet, cwd=str(cwd),
        )
    except PapermillExecutionError as err:
        print(describe_failure(err, output), file=sys.stderr)
        if verbose:
            print("\n".join(err.traceback), file=sys.stderr)
        error = {"ename": err.ename, "evalue": err.evalue, "cell_index": err.cell_index}
        return 1, {"wall_time_s": time.perf_counter() - start, "status": "failed", "error": error}
    except Exception as err:  # a dead kernel, a timeout, an unwritable output: still one line and a record
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        if verbose:
            import traceback

            traceback.print_exc()
        error = {"ename": type(err).__name__, "evalue": str(err)}
        return 1, {"wall_time_s": time.perf_counter() - start, "status": "failed", "error": error}
    return 0, {"wall_time_s": time.perf_counter() - start, "status": "ok"}


if __name__ == "__main__":
    raise SystemExit(main())
