"""Include each inline script once per page.

In this build (Sphinx 7.4 under Jupyter Book 1) the inline scripts that extensions register at start-up, such as
sphinx-thebe's ``const THEBE_JS_URL = …`` and sphinx-togglebutton's ``var togglebuttonSelector = …``, reach every
page twice: once with the file name ``None`` and once with ``""``. Sphinx removes duplicate script files but not
these, so the page declared the same ``const`` twice and the browser logged "Identifier 'THEBE_JS_URL' has
already been declared" on every page. This keeps the first of each.
"""

from __future__ import annotations


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    filename = getattr(script, "filename", str(script)) or ""  # an inline script comes as None or as ""
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def _drop_duplicates(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept  # in place: it is the builder's own list, which later handlers (MathJax's) append to


def setup(app):
    # Early: the event stops at the first handler that returns a value, and some theme handlers do.
    app.connect("html-page-context", _drop_duplicates, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
