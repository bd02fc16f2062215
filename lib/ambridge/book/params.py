"""A chapter's parameters: the cell tagged ``parameters``, the values given on a command line, and their merge.

Every chapter opens with one code cell tagged ``parameters`` whose assignments are its defaults (the quick preset).
The runner reads that cell (:func:`parameters_cell`, :func:`parse_parameters`), parses ``-p NAME VALUE`` values
(:func:`parse_value`) and lays presets, overrides and ``--device`` over the defaults (:func:`merge_parameters`).
An unknown name is a :class:`~ambridge.book.errors.UsageError` listing the valid ones, before anything runs: plain
papermill would only warn and silently run the defaults. Whether a *value* is allowed is the chapter's own
validation cell's business (:mod:`ambridge.checks`). See ``book/reference/rerunning.md``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from typing import Any, Sequence

import yaml

from .chapters import read_chapter, resolve_chapter
from .errors import UsageError

__all__ = [
    "Unevaluated",
    "parameters_cell",
    "parse_parameters",
    "chapter_parameters",
    "parse_value",
    "merge_parameters",
    "jsonable_parameters",
    "parameters_hash",
]


class Unevaluated(str):
    """The source text of a default that is not a literal (e.g. ``n = 2 ** 10``); it cannot be type-checked here."""

    def __repr__(self) -> str:
        return str(self)


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
    """The parameters of a chapter and their defaults (the defaults are the chapter's quick preset).

    Used by the runner, the timing records of ``make execute``, the runtime badge and the pairing test.
    """
    return parse_parameters(parameters_cell(read_chapter(resolve_chapter(chapter))).source)


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
    """The values to inject: presets in order, then ``-p`` overrides, then ``--device``. Unknown names raise.

    ``presets`` are ``(where, values)`` pairs, ``where`` naming the source in the error message (a preset file, a
    grid file's ``fixed:``); ``overrides`` are ``(name, text)`` pairs parsed with :func:`parse_value`.
    """
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


def jsonable_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters as JSON and papermill take them: an :class:`Unevaluated` default becomes its plain text."""
    return {k: str(v) if isinstance(v, Unevaluated) else v for k, v in parameters.items()}


def parameters_hash(parameters: dict[str, Any]) -> str:
    """8 hex digits identifying a full parameter set (same values, same hash, whatever the order given)."""
    blob = json.dumps(jsonable_parameters(parameters), sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:8]
