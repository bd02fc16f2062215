"""The built book in a real browser (``make test-site``, which ``make test`` runs after the strict build).

Headless Chrome or Chromium (whichever ``browsers.py`` finds) loads every page of the table of contents from a
local HTTP server and checks what a reader would see: no console errors, every figure loaded, every equation
typeset by the site's own MathJax, nothing fetched from the internet, a working dark mode, search that finds the
chapters, internal links and anchors that resolve, and on every chapter notebook the launch and download buttons
and the runtime badge. Screenshots of every page, light and dark, go to ``_build/screenshots/``.

The last tests break copies of a built page on purpose (a figure deleted, MathJax removed, an equation garbled,
a script from another host) and check that the same checks then fail.

Skipped unless ``AMBRIDGE_SITE`` names the built site (``make test-site`` sets it to ``_build/html``), so the
main test run needs no built site and no browser.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import sitecheck
from sitecheck import ROOT, is_chapter, is_notebook, toc_pages

SITE = os.environ.get("AMBRIDGE_SITE")
pytestmark = pytest.mark.skipif(not SITE, reason="set AMBRIDGE_SITE to the built site (make test-site does)")

PAGES = toc_pages()
CHAPTERS = [page for page in PAGES if is_chapter(page)]
# A term that only one chapter's page is about; the search must list that chapter.
KNOWN_TERM = ("hypersphere", "chapters/06_attention_clustering")


@pytest.fixture(scope="session")
def site() -> Path:
    path = (ROOT / SITE).resolve() if SITE else None
    if path is None or not (path / "index.html").is_file():
        pytest.fail(f"no built site at {path}: run make book first")
    return path


@pytest.fixture(scope="session")
def screenshots(site) -> Path:
    folder = Path(os.environ.get("AMBRIDGE_SCREENSHOTS", site.parent / "screenshots"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="session")
def base(site):
    with sitecheck.serve(site) as url:
        yield url


@pytest.fixture(scope="session")
def driver(tmp_path_factory):
    browser = sitecheck.make_driver(tmp_path_factory.mktemp("chromium-profile"))
    yield browser
    browser.quit()


def _shot_name(docname: str) -> str:
    return docname.replace("/", "__")


@pytest.mark.parametrize("docname", PAGES)
def test_page_renders_offline_without_errors(driver, base, site, screenshots, docname):
    problems = sitecheck.page_problems(driver, base, docname)
    driver.save_screenshot(str(screenshots / f"{_shot_name(docname)}-light.png"))
    assert not problems, f"{docname}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("docname", PAGES)
def test_dark_mode_toggles(driver, base, screenshots, docname):
    sitecheck.load(driver, f"{base}{docname}.html")
    seen = sitecheck.toggle_theme(driver, "dark")
    assert seen[-1] == "dark", f"the theme switch never gave html[data-theme=dark]; themes seen: {seen}"
    driver.save_screenshot(str(screenshots / f"{_shot_name(docname)}-dark.png"))
    back = sitecheck.toggle_theme(driver, "light")  # the choice persists in localStorage: leave the site light
    assert back[-1] == "light", f"the theme switch never came back to light; themes seen: {back}"


def test_every_chapter_in_the_toc_is_checked():
    assert len(CHAPTERS) >= 6, f"expected the six chapters (or placeholders) in _toc.yml, found {CHAPTERS}"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_has_math_and_the_notebook_buttons(driver, base, site, docname):
    sitecheck.load(driver, f"{base}{docname}.html")
    if not is_notebook(site, docname):
        pytest.skip(f"{docname} is a placeholder page, not a notebook yet")
    assert sitecheck.math_count(driver) > 0, "a chapter with no equation at all: is MathJax's input missing?"
    hrefs = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    notebook = f"{docname}.ipynb"
    assert any("mybinder.org/v2/gh/" in h and h.endswith(notebook) for h in hrefs), "no Binder launch button"
    assert any("colab.research.google.com/github/" in h and h.endswith(notebook) for h in hrefs), "no Colab button"
    assert f"{base}_sources/{notebook}" in hrefs, "no .ipynb download button"


@pytest.mark.parametrize("docname", [c for c in CHAPTERS if c.startswith("chapters/")])
def test_chapter_shows_its_runtime_badge(driver, base, docname):
    sitecheck.load(driver, f"{base}{docname}.html")
    badge = driver.execute_script(
        "const b = document.querySelector('.ambridge-runtime-badge');"
        "return b ? {chapter: b.dataset.chapter, text: b.textContent} : null;"
    )
    assert badge is not None, "no runtime badge under the title"
    assert badge["chapter"] == docname.split("/")[-1]
    assert "Quick preset" in badge["text"] and "Paper preset" in badge["text"]


@pytest.mark.parametrize("docname", CHAPTERS)
def test_search_finds_each_chapter_by_its_title(driver, base, docname):
    sitecheck.load(driver, f"{base}{docname}.html")
    heading = driver.execute_script("const h = document.querySelector('article h1'); return h ? h.textContent : ''")
    query = re.sub(r"[#¶]", "", heading).strip()
    assert query, "the page has no title"
    hits = sitecheck.search_hits(driver, base, query)
    assert any(f"{docname}.html" in hit for hit in hits), f"searching {query!r} did not list {docname}: {hits}"


def test_search_finds_a_known_term(driver, base):
    term, docname = KNOWN_TERM
    if docname not in PAGES:
        pytest.skip(f"{docname} is not in the table of contents")
    hits = sitecheck.search_hits(driver, base, term)
    assert any(f"{docname}.html" in hit for hit in hits), f"searching {term!r} did not list {docname}: {hits}"


def test_internal_links_and_anchors_resolve(site):
    problems = sitecheck.link_problems(site, PAGES + ["genindex", "search"])
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------------- self-tests


def _first_notebook_with_figures_and_math(site) -> str:
    for docname in CHAPTERS:
        text = (site / f"{docname}.html").read_text() if (site / f"{docname}.html").is_file() else ""
        if is_notebook(site, docname) and "_images/" in text and 'class="math' in text:
            return docname
    pytest.skip("no chapter notebook with both figures and equations to break")


@pytest.fixture()
def broken(site, tmp_path):
    """A copy of the site to break, its base URL, and the chapter page chosen for breaking."""
    copy = tmp_path / "html"
    shutil.copytree(site, copy)
    with sitecheck.serve(copy) as url:
        yield copy, url, _first_notebook_with_figures_and_math(site)


def test_checks_pass_on_the_unbroken_copy(driver, broken):
    copy, url, docname = broken
    assert sitecheck.page_problems(driver, url, docname) == []


def test_checks_catch_a_missing_figure(driver, broken):
    copy, url, docname = broken
    page = copy / f"{docname}.html"
    src = re.search(r'<img[^>]*\bsrc="([^"]*_images/[^"]+)"', page.read_text()).group(1)  # a figure of the text
    (page.parent / src).resolve().unlink()
    problems = sitecheck.page_problems(driver, url, docname)
    assert any(p.startswith("figure not loaded") for p in problems), problems


def test_checks_catch_equations_mathjax_did_not_render(driver, broken):
    copy, url, docname = broken
    (copy / "_static" / "mathjax" / "tex-chtml.js").unlink()  # the offline MathJax is gone
    problems = sitecheck.page_problems(driver, url, docname)
    assert any(p.startswith("equation not rendered") for p in problems), problems


def test_checks_catch_broken_equations(driver, broken):
    copy, url, docname = broken
    page = copy / f"{docname}.html"
    marker = 'class="math notranslate nohighlight">'
    first, second = [m.end() for m in re.finditer(re.escape(marker), page.read_text())][:2]
    text = page.read_text()
    # A TeX error MathJax typesets as an error, and an unclosed brace it cannot even find as math.
    text = text[:second] + r"\(\frac{1}\)" + text[second:]
    text = text[:first] + r"\(\frac{1}{\)" + text[first:]
    page.write_text(text)
    problems = sitecheck.page_problems(driver, url, docname)
    assert any(p.startswith("MathJax error") for p in problems), problems
    assert any(p.startswith("raw TeX") for p in problems), problems


def test_checks_catch_an_asset_from_the_internet(driver, broken):
    copy, url, docname = broken
    page = copy / f"{docname}.html"
    page.write_text(page.read_text().replace("</head>", '<script src="https://cdn.example.org/x.js"></script></head>'))
    problems = sitecheck.page_problems(driver, url, docname)
    assert any("cdn.example.org" in p for p in problems), problems
