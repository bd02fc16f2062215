"""The reproduction ledger: every claim of the paper, and the book's own, held against the evidence.

One YAML file per chapter under ``chapters/ledger/`` (``NN_slug.yaml``, a list of rows) is the single source of
truth. Each row is one claim, with the fields

- ``id``: unique, kebab-case;
- ``claim``: the claim in one sentence;
- ``tag``: ``paper`` (stated in the paper, its workshop version, poster or public code) · ``derived`` (follows by
  algebra, checked numerically) · ``choice`` (a reconstruction where the protocol is not public) · ``extension`` (the
  book's own question);
- ``source``: the paper's section, equation, figure or poster panel, or ``file@commit`` of public code;
- ``anchor``: the chapter section holding the evidence (the heading's anchor, e.g. ``the-transferred-bound``);
- ``paper_value``: the paper's number where it has one ("read off the figure" where it is), else null;
- ``result``: the name the chapter publishes its value under with ``publish_results`` — the book's value is never
  typed here; null when the evidence is a figure or a derivation with no single number;
- ``format``: how to print that value, a ``str.format`` string such as ``"{:.3g}"`` that may also name other
  published results (``"{} of {n_sets}"``); default ``"{}"``;
- ``holds_if``: optional, a Python expression in ``value`` (and any other published result, by name) that must be
  true for the status to stand — the evidence for the status, whatever it is (for a *not reproduced* row, the
  condition that shows the difference); a row whose condition fails is shown as *not reproduced* and fails the
  ledger test;
- ``status``: one of :data:`STATUSES`;
- ``reason``: one line, required for every status but *reproduced*.

Chapters print their claims table with :func:`claims_table` from the numbers they publish; the page
"Reproduction at a glance" is built from all rows and the chapters' committed ``results.json``. Used in every
chapter's "Claims and evidence" section.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .chapters import chapters_dir

__all__ = ["STATUSES", "TAGS", "LedgerError", "Row", "ledger_dir", "load_ledger", "chapter_rows", "evaluate",
           "book_value", "shown_status", "claims_table", "status_counts", "published_results"]

STATUSES = ("reproduced", "reproduced with stated deviation", "partly", "not reproduced", "paper in error",
            "not comparable", "extension")
TAGS = ("paper", "derived", "choice", "extension")
_FIELDS = {"id", "claim", "tag", "source", "anchor", "paper_value", "result", "format", "holds_if", "status",
           "reason"}
_REQUIRED = ("id", "claim", "tag", "source", "anchor", "status")
_SAFE = {"abs": abs, "min": min, "max": max, "round": round, "len": len, "all": all, "any": any, "math": math,
         "True": True, "False": False, "None": None}


class LedgerError(ValueError):
    """A ledger file breaks the schema above (the message names the file, the row and the field)."""


@dataclass(frozen=True)
class Row:
    """One claim of the ledger (fields as in the module docstring); ``chapter`` is the file's stem."""

    chapter: str
    id: str
    claim: str
    tag: str
    source: str
    anchor: str
    status: str
    paper_value: str | None = None
    result: str | None = None
    format: str = "{}"
    holds_if: str | None = None
    reason: str = ""
    extra: dict = field(default_factory=dict)


def ledger_dir() -> Path:
    """``chapters/ledger/``: one YAML file of rows per chapter."""
    return chapters_dir() / "ledger"


def _row(chapter: str, index: int, raw: Any, where: str) -> Row:
    if not isinstance(raw, dict):
        raise LedgerError(f"{where}: row {index} is not a mapping")
    name = raw.get("id", f"#{index}")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise LedgerError(f"{where}: row {name}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    for key in _REQUIRED:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise LedgerError(f"{where}: row {name}: `{key}` must be a non-empty string")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", raw["id"]):
        raise LedgerError(f"{where}: row {name}: `id` must be kebab-case")
    if raw["status"] not in STATUSES:
        raise LedgerError(f"{where}: row {name}: status {raw['status']!r} is not one of {', '.join(STATUSES)}")
    if raw["tag"] not in TAGS:
        raise LedgerError(f"{where}: row {name}: tag {raw['tag']!r} is not one of {', '.join(TAGS)}")
    if raw["status"] != "reproduced" and not str(raw.get("reason") or "").strip():
        raise LedgerError(f"{where}: row {name}: status {raw['status']!r} needs a one-line `reason`")
    for key in ("paper_value", "result", "format", "holds_if", "reason"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise LedgerError(f"{where}: row {name}: `{key}` must be a string (quote numbers)")
    if raw.get("holds_if"):
        try:
            ast.parse(raw["holds_if"], mode="eval")
        except SyntaxError as err:
            raise LedgerError(f"{where}: row {name}: `holds_if` is not an expression: {err.msg}") from None
        if not raw.get("result"):
            raise LedgerError(f"{where}: row {name}: `holds_if` needs the `result` it tests")
    fields = {k: v for k, v in raw.items() if v is not None}
    return Row(chapter=chapter, **fields)


def load_ledger(folder: str | Path | None = None) -> list[Row]:
    """Every row of every ``*.yaml`` in ``folder`` (default :func:`ledger_dir`), validated; ids are unique."""
    folder = Path(folder) if folder is not None else ledger_dir()
    rows: list[Row] = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise LedgerError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(raw, list):
            raise LedgerError(f"{path}: must be a YAML list of rows")
        rows += [_row(path.stem, i, r, str(path)) for i, r in enumerate(raw, start=1)]
    seen = Counter(r.id for r in rows)
    twice = sorted(k for k, n in seen.items() if n > 1)
    if twice:
        raise LedgerError(f"ledger ids used twice: {twice}")
    return rows


def chapter_rows(chapter: str, rows: list[Row] | None = None) -> list[Row]:
    """The rows of one chapter (``"05_kde_capacity"``), in file order."""
    rows = load_ledger() if rows is None else rows
    return [r for r in rows if r.chapter == chapter]


def evaluate(row: Row, results: Mapping[str, Any]) -> bool | None:
    """The row's ``holds_if`` on the published ``results`` (``value`` = ``results[row.result]``); None without one.

    A result the row names but the chapter did not publish is an error, never a silent pass."""
    if not row.holds_if:
        return None
    if row.result not in results:
        raise LedgerError(f"row {row.id}: the chapter did not publish `{row.result}`")
    names = {**_SAFE, **{k: v for k, v in results.items() if k.isidentifier()}, "value": results[row.result]}
    return bool(eval(compile(row.holds_if, f"<ledger {row.id}>", "eval"), {"__builtins__": {}}, names))  # noqa: S307


def book_value(row: Row, results: Mapping[str, Any]) -> str:
    """The book's value of a row, formatted, from the published ``results`` ("—" when the row has no result)."""
    if not row.result:
        return "—"
    if row.result not in results:
        raise LedgerError(f"row {row.id}: the chapter did not publish `{row.result}`")
    return row.format.format(results[row.result], **{k: v for k, v in results.items() if k.isidentifier()})


def shown_status(row: Row, results: Mapping[str, Any]) -> str:
    """The status as shown: the ledger's, unless its condition fails on the numbers, then *not reproduced*."""
    if evaluate(row, results) is False:
        return "not reproduced"
    return row.status


def claims_table(chapter: str, results: Mapping[str, Any], rows: list[Row] | None = None):
    """A chapter's claims table — claim [tag] → source → paper → this book → status (reason) — from its ledger rows
    and the numbers it just published. Returns a Markdown display object (see :func:`ambridge.report.markdown_table`)."""
    from ..report import markdown_table

    table = []
    for r in chapter_rows(chapter, rows):
        status = shown_status(r, results)
        why = r.reason if status == r.status else f"its condition `{r.holds_if}` fails on the published value"
        table.append((f"{r.claim} [{r.tag}]", r.source, r.paper_value or "—", book_value(r, results),
                      f"**{status}**" + (f": {why}" if why else "")))
    if not table:
        raise LedgerError(f"no ledger rows for chapter {chapter}")
    return markdown_table(["claim [tag]", "source", "paper", "this book", "status"], table)


def status_counts(rows: list[Row], results_by_chapter: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """How many rows show each status (every status listed, zeros included)."""
    counts = Counter(shown_status(r, results_by_chapter.get(r.chapter, {})) for r in rows)
    return {s: counts.get(s, 0) for s in STATUSES}


def published_results(chapter: str) -> dict[str, Any]:
    """The committed headline numbers of a chapter (``chapters/artifacts/<chapter>/results.json``, written by
    ``make execute``); empty when the chapter has none yet."""
    path = chapters_dir() / "artifacts" / chapter / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}
