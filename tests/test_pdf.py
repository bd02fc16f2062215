"""The book as a PDF (``make pdf``): every chapter, section, figure, equation and numbered result is in it.

``make pdf`` builds ``_build/latex/book.pdf`` and runs this file with ``AMBRIDGE_PDF`` naming it. Without that
variable (``make test``, which installs no TeX) the tests are skipped with one line; with it and no PDF (TeX could
not be had here: ``tests/pdf/tex.py`` said why) they are skipped too, except under ``CI=true``, where ``make pdf``
must produce the PDF. The PDF is read with poppler's ``pdftotext`` and ``pdfimages``, which the target installs
with TeX.

Each check compares the PDF with the sources, not with numbers typed here: the chapters come from ``_toc.yml``, their
titles, section headings and numbered results (``{prf:...}`` blocks) from the executed notebooks' markdown cells
(what the book renders), the figure count from the notebooks' image outputs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tex", ROOT / "tests" / "pdf" / "tex.py")
tex = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tex)

PDF, WHY, MUST_FAIL = tex.pdf_to_test(os.environ, ROOT)
if PDF is None:  # make test sets no AMBRIDGE_PDF: one line, and the module is skipped
    if MUST_FAIL:
        pytest.fail(f"{WHY} (CI=true: make pdf must build the PDF)", pytrace=False)
    pytest.skip(WHY, allow_module_level=True)

PROOF_BLOCK = re.compile(r"^(?:```|:::)\{prf:(definition|theorem|proposition|lemma|corollary)\}\s*(.*?)\s*$", re.M)
HEADING = re.compile(r"^(#{1,2}) (.+?)\s*$", re.M)


def _unavailable(why: str):
    if tex.in_ci(os.environ):
        pytest.fail(f"{why} (CI=true: make pdf must build the PDF)")
    pytest.skip(why)


def toc_chapters() -> list[Path]:
    """The chapters' MyST sources, in the order of the table of contents."""
    found: list[Path] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            name = node.get("file", "")
            if name.startswith("chapters/"):
                found.append(ROOT / f"{name}.md")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    return found


def plain(text: str) -> str:
    """Text as pdftotext gives it back: markup dropped, ligatures and line breaks undone, spaces collapsed."""
    text = re.sub(r"\{[a-z:]+\}`([^`]*)`", r"\1", text)  # {role}`text`
    text = text.replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKC", text)  # "ﬁ" -> "fi", math italic 𝛽 -> β
    text = text.translate(str.maketrans("‘’“”", "''\"\""))  # typographic quotes as typed
    text = re.sub(r"-\n(?=[a-z])", "", text)  # a word hyphenated across lines
    return re.sub(r"\s+", " ", text).strip()


def rendered_markdown(md: Path) -> str:
    """The chapter's markdown as the book renders it: the markdown cells of the executed notebook (the ``.md`` may
    be ahead of it while a chapter is being edited)."""
    nb = json.loads(md.with_suffix(".ipynb").read_text())
    return "\n".join("".join(cell["source"]) for cell in nb["cells"] if cell["cell_type"] == "markdown")


def headings(md: Path) -> list[str]:
    """The chapter's title and its section headings (``#`` and ``##``), outside fenced blocks."""
    source = re.sub(r"```.*?```", "", rendered_markdown(md), flags=re.S)
    return [plain(title) for _, title in HEADING.findall(source)]


def chapter_number(md: Path) -> int:
    """The book's number of a chapter: ``chapters/05_kde_capacity`` is chapter 5."""
    return int(md.stem.split("_", 1)[0])


def notebook_images(ipynb: Path) -> int:
    """Image outputs (PNG or JPEG) of an executed notebook: the figures its page shows."""
    nb = json.loads(ipynb.read_text())
    return sum(
        1
        for cell in nb["cells"]
        for out in cell.get("outputs", [])
        if {"image/png", "image/jpeg"} & set(out.get("data", {}))
    )


@pytest.fixture(scope="module")
def pdf() -> Path:
    return PDF


def _poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        _unavailable(f"{tool} not found (Debian/Ubuntu: poppler-utils, which make pdf installs with TeX)")
    return found


@pytest.fixture(scope="module")
def raw_text(pdf) -> str:
    out = subprocess.run([_poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def text(raw_text) -> str:
    return plain(raw_text)


def test_every_chapter_title_and_section_is_in_the_pdf(text):
    chapters = toc_chapters()
    assert chapters, "no chapters in _toc.yml"
    missing = [f"{md.stem}: {title!r}" for md in chapters for title in headings(md) if title not in text]
    assert not missing, "headings not found in the PDF's text:\n" + "\n".join(missing)


def test_chapters_are_numbered_as_in_the_book(text):
    """The PDF's running heads say "Chapter 5. The memory capacity of ..." for chapters/05_...: the preface is
    chapter 0 (_config.yml), so the PDF's numbers, and its equation numbers, are the book's."""
    wrong = [md.stem for md in toc_chapters() if f"Chapter {chapter_number(md)}. {headings(md)[0]}" not in text]
    assert not wrong, f"not numbered as in the book: {wrong}"


def test_chapters_come_in_the_order_of_the_table_of_contents(text):
    starts = [text.find(f"Chapter {chapter_number(md)}. {headings(md)[0]}") for md in toc_chapters()]
    assert starts == sorted(starts), "chapters out of order in the PDF"


def test_every_figure_is_embedded(pdf):
    listing = subprocess.run([_poppler("pdfimages"), "-list", str(pdf)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()[2:]]
    embedded = sum(1 for row in rows if len(row) > 2 and row[2] == "image")  # not the "smask" alpha channels
    figures = sum(notebook_images(md.with_suffix(".ipynb")) for md in toc_chapters())
    assert figures > 0
    assert embedded >= figures, f"{embedded} images in the PDF, {figures} figures in the executed chapters"


def test_equations_are_typeset_not_left_as_source(text):
    leftovers = [token for token in ("$$", "\\frac", "\\operatorname", "\\lVert", "\\begin{") if token in text]
    assert not leftovers, f"LaTeX source in the PDF's text: {leftovers}"
    # the bridge identity of chapter 1, -log p(x) = beta E(x) + log K + D/2 log(pi/beta), as typeset glyphs
    bridge = r"log\s*p\(x\)\s*=\s*β\s*E\(x\)\s*\+\s*log\s*K\s*\+"
    assert re.search(bridge, text), "the bridge identity is not in the PDF"


def test_equations_are_set_in_a_math_font(raw_text):
    """Typeset mathematics comes out of pdftotext as Unicode's mathematical italic letters (𝑥, 𝛽), which no
    chapter types: hundreds of them, or the equations were set as plain text."""
    math_letters = sum(1 for char in raw_text if 0x1D400 <= ord(char) <= 0x1D7FF)
    assert math_letters > 500, f"only {math_letters} mathematical letters in the PDF"


def test_numbered_results_are_numbered_and_every_reference_resolves(text):
    blocks = [(kind, title) for md in toc_chapters() for kind, title in PROOF_BLOCK.findall(rendered_markdown(md))]
    assert blocks, "no numbered results in the chapters"
    for number, (kind, title) in enumerate(blocks, start=1):  # one counter for all kinds (_config.yml)
        assert f"{kind.title()} {number} ({plain(title)})" in text, f"{kind} {number} ({title}) not in the PDF"
    assert "??" not in text, "an unresolved cross-reference (??) in the PDF"


def test_the_site_serves_the_pdf(pdf):
    site = pdf.parents[1] / "html"
    if not (site / "index.html").is_file():
        pytest.skip(f"no site built beside the PDF ({site})")
    served = site / "_static" / "ambridge-book.pdf"
    assert served.is_file() and served.read_bytes() == pdf.read_bytes(), "the site does not serve this PDF"
    intro = (site / "book" / "intro.html").read_text()
    assert 'href="../_static/ambridge-book.pdf"' in intro, "the introduction does not link the PDF"
