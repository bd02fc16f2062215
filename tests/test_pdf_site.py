"""The site's side of the PDF (book/_ext/book_pdf.py): a link only when the PDF exists, pages rebuilt when it
appears or goes, and the PDF copied into the site. Fakes stand in for Sphinx's app and translator; the real build is
checked by ``make pdf`` (tests/test_pdf.py, ``test_the_site_serves_the_pdf``)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import book_pdf  # noqa: E402


def fake_app(tmp_path: Path, builder_format: str = "html"):
    build = tmp_path / "_build"
    (build / ".doctrees").mkdir(parents=True)
    return SimpleNamespace(
        doctreedir=str(build / ".doctrees"), outdir=str(build / "html"), builder=SimpleNamespace(format=builder_format)
    )


def make_pdf(app, content: bytes = b"%PDF-1.5 the book") -> Path:
    pdf = book_pdf.built_pdf(app)
    pdf.parent.mkdir(parents=True, exist_ok=True)
    pdf.write_bytes(content)
    return pdf


def render(app, docname: str) -> str:
    """What the HTML translator writes for {book-pdf}`the PDF` on page ``docname``."""
    body: list[str] = []
    builder = SimpleNamespace(app=app, current_docname=docname, get_target_uri=lambda name: f"{name}.html")
    translator = SimpleNamespace(builder=builder, body=body)
    node = book_pdf.book_pdf_link("", "the PDF")
    book_pdf.visit_html(translator, node)
    body.append(node.astext())
    book_pdf.depart_html(translator, node)
    return "".join(body)


def test_the_pdf_is_looked_for_beside_the_html_build(tmp_path):
    app = fake_app(tmp_path)
    assert book_pdf.built_pdf(app) == tmp_path / "_build" / "latex" / "book.pdf"


def test_no_pdf_no_link(tmp_path):
    html = render(fake_app(tmp_path), "book/intro")
    assert "<a" not in html and "the PDF" in html and "make pdf" in html


def test_a_built_pdf_is_linked_relative_to_the_page(tmp_path):
    app = fake_app(tmp_path)
    make_pdf(app)
    link = '<a class="reference download external" href="../_static/ambridge-book.pdf" download>the PDF</a>'
    assert render(app, "book/intro") == link
    assert 'href="_static/ambridge-book.pdf"' in render(app, "index")


def test_pages_using_the_role_are_reread_when_the_pdf_appears_or_goes(tmp_path):
    app = fake_app(tmp_path)
    env = SimpleNamespace(book_pdf_docs={"book/intro"})
    assert book_pdf.outdated_when_pdf_changes(app, env, set(), set(), set()) == []  # first build: nothing known
    assert book_pdf.outdated_when_pdf_changes(app, env, set(), set(), set()) == []  # unchanged
    pdf = make_pdf(app)
    assert book_pdf.outdated_when_pdf_changes(app, env, set(), set(), set()) == ["book/intro"]
    assert book_pdf.outdated_when_pdf_changes(app, env, set(), set(), set()) == []
    pdf.unlink()
    assert book_pdf.outdated_when_pdf_changes(app, env, set(), set(), set()) == ["book/intro"]
    make_pdf(app)
    assert book_pdf.outdated_when_pdf_changes(app, env, set(), set(), {"book/intro"}) == []  # a removed page


def test_the_html_build_copies_the_pdf_into_the_site(tmp_path):
    app = fake_app(tmp_path)
    book_pdf.copy_pdf(app, None)
    served = Path(app.outdir) / book_pdf.SERVED
    assert not served.exists()  # nothing built, nothing served
    make_pdf(app, b"%PDF-1.5 version 2")
    book_pdf.copy_pdf(app, RuntimeError("the build failed"))
    assert not served.exists()
    book_pdf.copy_pdf(app, None)
    assert served.read_bytes() == b"%PDF-1.5 version 2"
    latex = fake_app(tmp_path / "other", builder_format="latex")
    make_pdf(latex)
    book_pdf.copy_pdf(latex, None)
    assert not (Path(latex.outdir) / book_pdf.SERVED).exists()


def test_parallel_reads_merge_the_pages_using_the_role():
    env, other = SimpleNamespace(book_pdf_docs={"a"}), SimpleNamespace(book_pdf_docs={"b"})
    book_pdf.merge_info(None, env, ["b"], other)
    assert env.book_pdf_docs == {"a", "b"}
    book_pdf.purge_doc(None, env, "a")
    assert env.book_pdf_docs == {"b"}
