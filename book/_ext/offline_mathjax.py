"""Serve MathJax from the built site itself, so equations render with no network (a classroom, a train).

MathJax 3 comes from a registry package (`django-static-mathjax`, which ships MathJax's own es5 build and has no
dependencies); only the script and its web fonts are copied into ``_static/mathjax/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SCRIPT = "tex-chtml.js"
FONTS = Path("output", "chtml", "fonts", "woff-v2")


def _mathjax_es5() -> Path:
    import mathjax  # the package installs as `mathjax`, holding static/mathjax/es5

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _set_path(app, config) -> None:
    config.mathjax_path = f"mathjax/{SCRIPT}"


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_es5(), Path(app.outdir) / "_static" / "mathjax"
    (target / FONTS).mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / SCRIPT, target / SCRIPT)
    shutil.copytree(source / FONTS, target / FONTS, dirs_exist_ok=True)


def setup(app):
    _mathjax_es5()  # fail at start-up, with an ImportError naming the package, if it is missing
    app.connect("config-inited", _set_path)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
