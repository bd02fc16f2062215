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


def ledger_markdown(depth: int = 2) -> str:
    """The page's tables as MyST markdown; ``depth`` = how many folders the page sits below the book's root."""
    rows = ledger.load_ledger()
    results = {c: ledger.published_results(c) for c in {r.chapter for r in rows}}
    counts = ledger.status_counts(rows, results)
    per_chapter = Counter(r.chapter for r in rows)
    up = "../" * depth
    lines = [f"**{len(rows)} claims** from {len(per_chapter)} chapters.", "",
             "| status | claims |", "|---|---|"]
    lines += [f"| {status} | {n} |" for status, n in counts.items()]
    lines += ["", "| # | claim [tag] | source | paper | this book | status | evidence |", "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, start=1):
        try:
            status = ledger.shown_status(r, results[r.chapter])
        except ledger.LedgerError:
            status = r.status
        reason = r.reason if status == r.status else f"its condition `{r.holds_if}` fails on the published value"
        href = f"{up}chapters/{r.chapter}.html#{html.escape(r.anchor)}"
        chapter_no = r.chapter.split("_", 1)[0]
        link = f'<a href="{href}">Ch. {int(chapter_no)} §</a>'
        try:
            value = ledger.book_value(r, results[r.chapter])
        except ledger.LedgerError:  # tests/test_ledger.py fails on this; the page says it instead of breaking
            value, status, reason = "not published", "not comparable", "the chapter does not publish this number yet"
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
