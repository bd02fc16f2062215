"""Checking the built book in a real browser: headless Chrome or Chromium driven by selenium, the site served on
127.0.0.1 (``browsers.py`` says which browser and driver).

The functions here return lists of problems (strings) instead of asserting, so the same checks run on the real
site (where every list must be empty) and on deliberately broken copies of it (where they must not be).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = re.compile(r"\d+_[A-Za-z0-9_-]+")


# --------------------------------------------------------------------------------------------------- the book


def toc_pages(toc: Path = ROOT / "_toc.yml") -> list[str]:
    """Every page of the table of contents, in order, as Sphinx docnames (``chapters/01_energy_is_nll``)."""
    pages: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "file" in node:
                pages.append(str(node["file"]))
            elif "root" in node:
                pages.append(str(node["root"]))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)

    walk(yaml.safe_load(toc.read_text()))
    return pages


def is_chapter(docname: str) -> bool:
    """A chapter of the book, written or a placeholder: its file name is ``NN_slug``."""
    return bool(CHAPTER.fullmatch(docname.rsplit("/", 1)[-1]))


def is_notebook(site: Path, docname: str) -> bool:
    """Whether the page was rendered from a notebook (its ``.ipynb`` is in the site's ``_sources``)."""
    return (site / "_sources" / f"{docname}.ipynb").is_file()


# --------------------------------------------------------------------------------------------------- serving


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(directory: Path):
    """Serve ``directory`` on 127.0.0.1 at a free port; yields the base URL (ending in ``/``)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def make_driver(profile: Path):
    """Headless Chrome or Chromium, the one ``browsers.find`` picks (an installed browser and its chromedriver).

    Every host name but 127.0.0.1 resolves to nothing, so a page that needed the internet would show it.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from browsers import find

    found, why = find()
    if found is None:
        raise RuntimeError(f"no browser for the browser test: {why}")
    os.environ["SE_OFFLINE"] = "true"  # both paths are given: selenium must not go looking for others
    options = webdriver.ChromeOptions()
    options.binary_location = found.browser
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,900", f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=found.driver))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


# --------------------------------------------------------------------------------------------------- in the browser

_WAIT_FOR_PAGE = """
const done = arguments[arguments.length - 1];
const deadline = Date.now() + 20000;
function finish() {
  // Lazy images would never load off-screen: ask for all of them now, then wait until each has settled.
  const images = Array.from(document.querySelectorAll('img'));
  images.forEach(img => { img.loading = 'eager'; });
  const settled = () => images.every(img => img.complete);
  (function poll() {
    if (settled() || Date.now() > deadline) { done(true); } else { setTimeout(poll, 50); }
  })();
}
(function waitForMath() {
  const hasMath = document.querySelector('.math') !== null;
  const mj = window.MathJax;
  if (!hasMath) { finish(); return; }
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(finish, finish);
  } else if (document.readyState === 'complete' || Date.now() > deadline) {
    finish();  // MathJax's deferred script has run by now if it loaded at all: it did not
  } else {
    setTimeout(waitForMath, 50);
  }
})();
"""

_INSPECT = r"""
const base = arguments[0];
const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
const images = Array.from(article.querySelectorAll('img')).map(img => ({
  src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth,
}));
const maths = Array.from(document.querySelectorAll('.math'));
const unrendered = maths.filter(el => !el.querySelector('mjx-container'))
  .map(el => el.textContent.trim().slice(0, 80));
const mathErrors = Array.from(document.querySelectorAll('mjx-merror, [data-mjx-error]'))
  .map(el => (el.getAttribute('data-mjx-error') || el.textContent || '').slice(0, 80));
// Raw TeX left on the page: text outside code, scripts and rendered math that still holds a delimiter (MathJax
// leaves \( ... \) untouched when it cannot find a valid expression between them, e.g. an unclosed brace).
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, {
  acceptNode: node => node.parentElement.closest('pre, code, script, style, textarea, mjx-container')
    ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
});
const raw = [];
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const text = node.textContent;
  if (/\$\$|\\\(|\\\)|\\\[|\\\]/.test(text)) raw.push(text.trim().slice(0, 80));
}
const requested = performance.getEntriesByType('resource').map(e => e.name)
  .concat(performance.getEntriesByType('navigation').map(e => e.name));
const remote = requested.filter(url => !url.startsWith(base));
const referenced = Array.from(document.querySelectorAll(
  'script[src], link[href][rel~="stylesheet"], link[href][rel~="preload"], link[href][rel~="icon"], ' +
  'link[href][rel~="modulepreload"], img[src], source[src], video[src], audio[src], iframe[src]'
)).map(el => el.src || el.href).filter(url => url && !url.startsWith(base) && !url.startsWith('data:'));
return {images, nMath: maths.length, unrendered, mathErrors, raw, remote, referenced};
"""


def load(driver, url: str) -> None:
    """Open ``url`` and wait until its math is typeset and its images have settled."""
    driver.get(url)
    driver.execute_async_script(_WAIT_FOR_PAGE)


def console_errors(driver) -> list[str]:
    """Console messages of level SEVERE since the last call (failed loads, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def page_problems(driver, base: str, docname: str) -> list[str]:
    """Everything wrong with one page: console errors, figures that did not load, math MathJax did not render,
    raw TeX left in the text, and anything requested from or referenced on another host."""
    driver.get_log("browser")  # drop what earlier pages logged
    load(driver, urljoin(base, f"{docname}.html"))
    found = driver.execute_script(_INSPECT, base)
    problems = [f"console error: {message}" for message in console_errors(driver)]
    problems += [f"figure not loaded: {img['src']}" for img in found["images"] if not img["width"]]
    problems += [f"equation not rendered by MathJax: {text!r}" for text in found["unrendered"]]
    problems += [f"MathJax error: {text!r}" for text in found["mathErrors"]]
    problems += [f"raw TeX in the text: {text!r}" for text in found["raw"]]
    problems += [f"requested from the internet: {url}" for url in found["remote"]]
    problems += [f"references a non-local asset: {url}" for url in found["referenced"]]
    return problems


def math_count(driver) -> int:
    return driver.execute_script("return document.querySelectorAll('.math').length")


def theme(driver) -> str | None:
    return driver.execute_script("return document.documentElement.dataset.theme || null")


def toggle_theme(driver, want: str, clicks: int = 3) -> list[str]:
    """Click the theme switch until ``html[data-theme]`` is ``want``; return the themes seen along the way."""
    seen = [theme(driver)]
    for _ in range(clicks):
        if seen[-1] == want:
            break
        clicked = driver.execute_script(
            """const buttons = Array.from(document.querySelectorAll('.theme-switch-button'));
               const button = buttons.find(b => b.offsetParent !== null) || buttons[0];
               if (!button) return false; button.click(); return true;"""
        )
        if not clicked:
            break
        time.sleep(0.1)
        seen.append(theme(driver))
    return seen


def search_hits(driver, base: str, query: str) -> list[str]:
    """Hrefs of the results the site's own search page lists for ``query`` (absolute URLs)."""
    from urllib.parse import quote

    driver.get(urljoin(base, f"search.html?q={quote(query)}"))
    deadline = time.time() + 20
    while time.time() < deadline:
        summary = driver.execute_script(
            "const s = document.querySelector('#search-results .search-summary, p.search-summary');"
            "return s ? s.textContent : '';"
        )
        if summary and ("found" in summary or "did not match" in summary):
            break
        time.sleep(0.1)
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.href);"
    )


# --------------------------------------------------------------------------------------------------- in the files


def _ids(path: Path, cache: dict) -> set[str]:
    if path not in cache:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(path.read_text(errors="replace"), "html.parser")
        cache[path] = {tag["id"] for tag in soup.find_all(id=True)} | {
            tag["name"] for tag in soup.find_all("a", attrs={"name": True})
        }
    return cache[path]


def link_problems(site: Path, docnames: list[str]) -> list[str]:
    """Every internal link of the given pages must reach an existing file, and its #anchor an id there."""
    from bs4 import BeautifulSoup

    problems, cache = [], {}
    for docname in docnames:
        page = site / f"{docname}.html"
        if not page.is_file():
            problems.append(f"{docname}: no page {page.relative_to(site)}")
            continue
        soup = BeautifulSoup(page.read_text(errors="replace"), "html.parser")
        page_url = f"http://site/{docname}.html"
        for tag in soup.find_all("a", href=True):
            href = tag["href"].strip()
            if not href or href.startswith(("javascript:", "mailto:", "data:")):
                continue
            target = urlsplit(urljoin(page_url, href))
            if target.scheme != "http" or target.netloc != "site":
                continue  # a link to another site: not ours to check offline
            path = site / unquote(target.path.lstrip("/"))
            if target.path.endswith("/"):
                path = path / "index.html"
            if not path.is_file():
                problems.append(f"{docname}: link {href!r} goes to a missing file")
                continue
            fragment = unquote(target.fragment)
            if fragment and path.suffix == ".html" and fragment not in _ids(path, cache):
                problems.append(f"{docname}: link {href!r} names a missing anchor #{fragment}")
    return problems
