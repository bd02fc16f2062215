"""The page "Reproduction at a glance": the ledger as tables, built when the book is built.

The directive ``{reproduction-ledger}`` reads every row of ``chapters/ledger/*.yaml`` (through
:mod:`ambridge.book.ledger`) and each chapter's committed ``chapters/artifacts/<slug>/results.json`` (the numbers the
chapter published when it was last executed), and writes two tables: the count of claims per status, and every claim
with its tag, source, the paper's value, the book's value, the status and its reason, and a link to the section of
the chapter that holds the evidence. Nothing in it is typed on the page.
"""

from __future__ import annotations

import html
from collections import Counter

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

from ambridge.book import ledger


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _shown(row, results) -> tuple[str, str, str]:
    """(book's value, status, reason) of a row as the page shows it."""
    try:
        value, status = ledger.book_value(row, results), ledger.shown_status(row, results)
    except ledger.LedgerError:  # tests/test_ledger.py fails on this; the page says it instead of breaking
        return "not published", "not comparable", "the chapter does not publish this number yet"
    reason = row.reason if status == row.status else f"its condition `{row.holds_if}` fails on the published value"
    return value, status, reason


def ledger_markdown(depth: int = 2) -> str:
    """The page's tables as MyST markdown; ``depth`` = how many folders the page sits below the book's root."""
    rows = ledger.load_ledger()
    results = {c: ledger.published_results(c) for c in {r.chapter for r in rows}}
    shown = [_shown(r, results[r.chapter]) for r in rows]
    counts = Counter(status for _, status, _ in shown)
    up = "../" * depth
    lines = [f"**{len(rows)} claims** from {len(results)} chapters.", "", "| status | claims |", "|---|---|"]
    lines += [f"| {status} | {counts.get(status, 0)} |" for status in ledger.STATUSES]
    lines += ["", "| # | claim [tag] | source | paper | this book | status | evidence |", "|---|---|---|---|---|---|---|"]
    for i, (r, (value, status, reason)) in enumerate(zip(rows, shown), start=1):
        href = f"{up}chapters/{r.chapter}.html#{html.escape(r.anchor)}"
        link = f'<a href="{href}">Ch. {int(r.chapter.split("_", 1)[0])} §</a>'
        lines.append("| " + " | ".join(_cell(c) for c in (
            i, f"{r.claim} [{r.tag}]", r.source, r.paper_value or "—", value,
            f"**{status}**" + (f": {reason}" if reason else ""), link)) + " |")
    return "\n".join(lines)


class ReproductionLedger(Directive):
    has_content = False

    def run(self):
        env = self.state.document.settings.env
        depth = env.docname.count("/")
        for path in ledger.ledger_dir().glob("*.yaml"):  # rebuild the page when the ledger changes
            env.note_dependency(str(path))
        for path in (ledger.ledger_dir().parent / "artifacts").glob("*/results.json"):
            env.note_dependency(str(path))
        text = StringList(ledger_markdown(depth).splitlines(), source="reproduction-ledger")
        node = nodes.container(classes=["reproduction-ledger"])
        self.state.nested_parse(text, self.content_offset, node)
        return [node]


def setup(app):
    app.add_directive("reproduction-ledger", ReproductionLedger)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
