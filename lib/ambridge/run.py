"""Rerun a chapter with new parameters: ``python -m ambridge.run CHAPTER [-p NAME VALUE]... [-f PRESET]...``.

The chapter's MyST-markdown source is executed with papermill into ``runs/<slug>/`` (git-ignored), and a JSON run
record (parameters, commit, hardware, wall time, status, and the numbers the chapter published with
:func:`ambridge.runtime.publish_results`) is written beside the executed notebook.

Why not plain papermill: it cannot read ``.md``, and it only *warns* on a misspelt parameter name, so a typo would
silently run the defaults. Here an unknown name is an error before anything runs, and a chapter that stops on a bad
value shows one line (the chapter's own :class:`~ambridge.runtime.ParameterError` message), not a traceback.

Exit codes: 0 ran, 1 the notebook failed, 2 bad command line (unknown chapter, parameter or preset).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = [
    "UsageError",
    "Unevaluated",
    "resolve_chapter",
    "read_chapter",
    "parameters_cell",
    "parse_parameters",
    "chapter_parameters",
    "load_preset",
    "read_yaml_mapping",
    "parse_value",
    "merge_parameters",
    "main",
]

CHAPTER_PATTERN = re.compile(r"^(\d+)_[A-Za-z0-9_-]+$")  # NN_slug


class UsageError(Exception):
    """A bad command line: unknown chapter, parameter or preset. Reported in one line, exit code 2."""


class Unevaluated(str):
    """The source text of a default that is not a literal (e.g. ``n = 2 ** 10``); it cannot be type-checked here."""

    def __repr__(self) -> str:
        return str(self)


# --------------------------------------------------------------------------------------------------- chapters


def _book_root() -> Path:
    """The book's root folder: :func:`ambridge.runtime.repo_root`, or the folder above ``lib/`` while the book has
    no ``_toc.yml`` yet (an editable install always sits at ``<root>/lib/ambridge``)."""
    from ambridge.book.records import repo_root

    try:
        return repo_root()
    except FileNotFoundError:
        root = Path(__file__).resolve().parents[2]
        if (root / "chapters").is_dir():
            return root
        raise


def chapters_dir() -> Path:
    """The folder holding the book's ``NN_slug.md`` chapters."""
    return _book_root() / "chapters"


def available_chapters() -> list[Path]:
    """Every ``chapters/NN_slug.md``, in chapter order."""
    return sorted(p for p in chapters_dir().glob("*.md") if CHAPTER_PATTERN.match(p.stem))


def resolve_chapter(chapter: str | os.PathLike) -> Path:
    """Turn ``"01"``, ``"1"``, ``"01_energy_is_nll"`` or a path to a ``.md`` (or its paired ``.ipynb``) into the
    chapter's ``.md`` source. A path may lie outside ``chapters/`` (the tests use a fixture chapter that way)."""
    text = os.fspath(chapter)
    path = Path(text)
    if path.suffix in (".md", ".ipynb") or os.sep in text or "/" in text:
        md = path.with_suffix(".md")
        for candidate in (md, chapters_dir() / md.name):  # "01_x.md" typed from the root also finds chapters/
            if candidate.is_file():
                return candidate.resolve()
        raise UsageError(f"no chapter source {md}")
    found = available_chapters()
    if text.isdigit():
        matches = [p for p in found if int(CHAPTER_PATTERN.match(p.stem).group(1)) == int(text)]
    else:
        matches = [p for p in found if p.stem == text]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(p.stem for p in found) or "(none)"
    raise UsageError(f"unknown chapter {text!r}; available chapters: {listing}")


def read_chapter(md: Path):
    """The chapter as a ``NotebookNode``, read with jupytext (papermill cannot read MyST markdown)."""
    import jupytext

    return jupytext.read(md)


def parameters_cell(nb) -> Any:
    """The code cell tagged ``parameters`` (the chapter contract says there is exactly one)."""
    tagged = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise UsageError(f"expected one code cell tagged `parameters`, found {len(tagged)}")
    return tagged[0]


def parse_parameters(source: str) -> dict[str, Any]:
    """Names and default values assigned in a parameters cell, in order.

    Literal defaults are evaluated (``ast.literal_eval``); anything else is kept as its source text, wrapped in
    :class:`Unevaluated`, so the runner can still list and override it.
    """
    defaults: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        try:
            default = ast.literal_eval(value)
        except ValueError:
            default = Unevaluated(ast.unparse(value))
        for target in targets:
            if isinstance(target, ast.Name):
                defaults[target.id] = default
    return defaults


def chapter_parameters(chapter: str | os.PathLike) -> dict[str, Any]:
    """The parameters of a chapter and their defaults (the defaults are the chapter's quick preset)."""
    return parse_parameters(parameters_cell(read_chapter(resolve_chapter(chapter))).source)


# --------------------------------------------------------------------------------------------------- values


def presets_dir(md: Path) -> Path:
    """``<chapters>/presets/<slug>/`` for the chapter ``<chapters>/<slug>.md``."""
    return md.parent / "presets" / md.stem


def load_preset(preset: str, md: Path) -> dict[str, Any]:
    """Read a preset: a YAML file path, or a bare name (``paper``) meaning ``presets/<slug>/<name>.yaml``."""
    return find_preset(preset, presets_dir(md), md.stem, "of parameter: value")


def find_preset(preset: str, folder: Path, owner: str, shape: str) -> dict[str, Any]:
    """Read ``preset``: a YAML file path, or a bare name meaning ``folder/<name>.yaml``; a missing one is a
    :class:`UsageError` listing the presets of ``owner`` in ``folder``; the file must hold a mapping ``shape``."""
    path = Path(preset)
    if not path.is_file() and path.suffix == "" and "/" not in preset:
        path = folder / f"{preset}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        raise UsageError(f"no preset {preset!r} (looked for {path}); presets of {owner}: {', '.join(names) or '(none)'}")
    return read_yaml_mapping(path, "preset", shape)


def read_yaml_mapping(path: Path, what: str, shape: str) -> dict:
    """A YAML file that must hold a mapping (a preset, a sweep's grid file); anything else is a :class:`UsageError`
    naming ``what`` the file is and the ``shape`` it should have."""
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"{what} {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise UsageError(f"{what} {path} must be a YAML mapping {shape}")
    return values


def parse_value(text: str, default: Any = None) -> Any:
    """Parse a ``-p`` value as YAML (``8`` -> int, ``8.0`` -> float, ``true`` -> bool, other text -> str).

    Two fixes so the obvious spelling works: a text parameter keeps the text as typed (YAML would turn ``no`` into
    False and ``007`` into 7), and a number parameter accepts ``1e-3`` (YAML 1.1 reads it as a string).
    """
    if isinstance(default, str) and not isinstance(default, Unevaluated):
        return text
    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        value = text  # e.g. "[1," : pass it on as text, the chapter's validation cell will say what is allowed
    if isinstance(value, str) and isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            value = float(value)
        except ValueError:
            pass  # leave it a string: the chapter's validation cell names the parameter and what is allowed
    return value


def _coerce(value: Any, default: Any) -> Any:
    """An int given for a float parameter becomes a float (``-p beta 8``), so ``check_number`` and f-strings see
    the type the chapter was written for."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _unknown(names: Sequence[str], defaults: dict[str, Any], where: str) -> UsageError:
    valid = "\n".join(f"  {name} = {default!r}" for name, default in defaults.items())
    plural = "s" if len(names) > 1 else ""
    return UsageError(
        f"unknown parameter{plural} {', '.join(map(repr, names))} ({where}); valid parameters and defaults:\n{valid}"
    )


def merge_parameters(
    defaults: dict[str, Any],
    presets: Sequence[tuple[str, dict[str, Any]]] = (),
    overrides: Sequence[tuple[str, str]] = (),
    device: str | None = None,
) -> dict[str, Any]:
    """The values to inject: presets in order, then ``-p`` overrides, then ``--device``. Unknown names raise."""
    chosen: dict[str, Any] = {}
    for where, values in presets:
        unknown = [name for name in values if name not in defaults]
        if unknown:
            raise _unknown(unknown, defaults, f"in preset {where}")
        chosen.update({name: _coerce(value, defaults[name]) for name, value in values.items()})
    unknown = [name for name, _ in overrides if name not in defaults]
    if unknown:
        raise _unknown(unknown, defaults, "given with -p")
    for name, text in overrides:
        chosen[name] = _coerce(parse_value(text, defaults[name]), defaults[name])
    if device is not None:
        if "device" not in defaults:
            raise UsageError("--device given, but this chapter has no `device` parameter (it runs on the CPU)")
        chosen["device"] = device
    return chosen


# --------------------------------------------------------------------------------------------------- running


def _jsonable(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Unevaluated) else v for k, v in parameters.items()}


def parameters_hash(parameters: dict[str, Any]) -> str:
    """8 hex digits identifying a full parameter set (same values, same hash, whatever the order given)."""
    blob = json.dumps(_jsonable(parameters), sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def default_output(md: Path, parameters: dict[str, Any]) -> Path:
    """``runs/<slug>/<YYYYmmdd-HHMMSS>-<hash>.ipynb`` under the book's root."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return _book_root() / "runs" / md.stem / f"{stamp}-{parameters_hash(parameters)}.ipynb"


def _record_device(parameters: dict[str, Any]):
    """The device the run record names: what ``device`` resolved to, or the CPU when it could not resolve."""
    from ambridge.runtime import ParameterError, select_device

    try:
        return select_device(parameters.get("device", "cpu"))
    except ParameterError:
        return "cpu"


def _describe_failure(err, output: Path) -> str:
    """One or two lines for a failed cell: the chapter's own message for a ParameterError, else name, value, cell."""
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
    names = sorted(p.stem for p in presets_dir(md).glob("*.yaml"))
    print("presets: " + (", ".join(names) or "(none)"))


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

    from ambridge.book.records import RESULTS_ENV, run_record

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
        _jsonable(parameters), wall_time_s=result.pop("wall_time_s"), device=_record_device(parameters),
        chapter=md.stem, overrides=_jsonable(chosen), notebook=str(output), results=results, **result,
    )
    output.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(output)
    return code


class _QuietPapermill(logging.Filter):
    """Drop papermill's parameter-inference warnings: :func:`merge_parameters` has already checked every name
    against the cell's `ast`, and papermill's line parser gives up on comments holding an ``=`` (``# >= 0``)."""

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
            read_chapter(md), str(output), parameters=_jsonable(chosen), kernel_name="python3",
            progress_bar=not quiet, cwd=str(cwd),
        )
    except PapermillExecutionError as err:
        print(_describe_failure(err, output), file=sys.stderr)
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
    sys.exit(main())
