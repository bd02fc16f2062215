"""The book as one PDF, served by the site and linked where a page writes {book-pdf}`link text`.

``make pdf`` builds ``_build/latex/book.pdf`` with Jupyter Book's LaTeX builder and then the HTML site. When the PDF
is there, this extension copies it into the site as ``_static/ambridge-book.pdf`` (:data:`SERVED`) and the role
renders as a download link to it. Where no PDF has been built (a plain ``make book``), the role renders its text
followed by "(built by ``make pdf``)" and no link, so the site never links a missing file (the browser test checks
every link). A page using the role is rewritten when the PDF appears or disappears. In the PDF itself the role is
plain text.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from docutils import nodes
from sphinx.util.osutil import relative_uri

SERVED = "_static/ambridge-book.pdf"


class book_pdf_link(nodes.Inline, nodes.TextElement):
    """The role's text; becomes a link to :data:`SERVED` in HTML when the PDF exists."""


def built_pdf(app) -> Path:
    """Where ``make pdf`` leaves the PDF: ``<build dir>/latex/book.pdf`` (the build dir holds ``.doctrees``)."""
    return Path(app.doctreedir).parent / "latex" / "book.pdf"


def book_pdf_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    env.book_pdf_docs = getattr(env, "book_pdf_docs", set()) | {env.docname}
    return [book_pdf_link(rawtext, text)], []


def visit_html(self, node) -> None:
    if built_pdf(self.builder.app).is_file():
        href = relative_uri(self.builder.get_target_uri(self.builder.current_docname), SERVED)
        self.body.append(f'<a class="reference download external" href="{href}" download>')
    else:
        self.body.append('<span class="book-pdf-unbuilt">')


def depart_html(self, node) -> None:
    if built_pdf(self.builder.app).is_file():
        self.body.append("</a>")
    else:
        self.body.append(" (built by <code>make pdf</code>)</span>")


def visit_plain(self, node) -> None:
    pass


def depart_plain(self, node) -> None:
    pass


def outdated_when_pdf_changes(app, env, added, changed, removed):
    """Pages using the role are rewritten when the PDF appears or disappears between two builds."""
    present = built_pdf(app).is_file()
    previous = getattr(env, "book_pdf_present", None)
    env.book_pdf_present = present
    if previous is None or previous == present:
        return []
    return sorted(getattr(env, "book_pdf_docs", set()) - set(removed))


def purge_doc(app, env, docname) -> None:
    env.book_pdf_docs = getattr(env, "book_pdf_docs", set()) - {docname}


def merge_info(app, env, docnames, other) -> None:
    env.book_pdf_docs = getattr(env, "book_pdf_docs", set()) | getattr(other, "book_pdf_docs", set())


def copy_pdf(app, exception) -> None:
    """Serve the PDF with the HTML site, as :data:`SERVED`."""
    pdf = built_pdf(app)
    if exception is None and app.builder.format == "html" and pdf.is_file():
        target = Path(app.outdir) / SERVED
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pdf, target)


def setup(app):
    app.add_node(
        book_pdf_link,
        html=(visit_html, depart_html),
        latex=(visit_plain, depart_plain),
        text=(visit_plain, depart_plain),
        man=(visit_plain, depart_plain),
        texinfo=(visit_plain, depart_plain),
    )
    app.add_role("book-pdf", book_pdf_role)
    app.connect("env-get-outdated", outdated_when_pdf_changes)
    app.connect("env-purge-doc", purge_doc)
    app.connect("env-merge-info", merge_info)
    app.connect("build-finished", copy_pdf)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
