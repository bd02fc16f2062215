"""The API reference of ``ambridge``, generated from the docstrings of every public module.

Used on a page as (inside ``{eval-rst}``, because autodoc parses docstrings as reStructuredText)::

    .. ambridge-api::

The directive finds the modules itself (:func:`public_modules`), so a new module of the library appears in the
reference at the next build, with no list to keep up to date. A module is public unless a part of its dotted name
starts with an underscore (``ambridge.memories._base``, ``ambridge.icl.__main__``). A module that fails to import stops
the strict build (autodoc warns, and warnings are errors).

While a module is being written and its docstrings do not parse yet, ``AMBRIDGE_API_SKIP=ambridge.x,ambridge.y``
in the environment leaves those modules (and their submodules) out of one build.

A package whose submodules are public (``ambridge.icl``) is shown by its docstring only; its names are documented
once, under the submodule that defines them, so no object is described twice.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

PACKAGE = "ambridge"


def public_modules(package: str = PACKAGE, skip: str = "") -> list[str]:
    """Dotted names of the package and all its public modules, sorted (a package before its submodules).

    ``skip`` is a comma-separated list of modules to leave out with their submodules.
    """
    root = importlib.import_module(package)
    skipped = tuple(name.strip() for name in skip.split(",") if name.strip())
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        if any(info.name == s or info.name.startswith(s + ".") for s in skipped):
            continue
        names.append(info.name)
    return sorted(names)


def _is_package_with_submodules(name: str, names: list[str]) -> bool:
    return any(other.startswith(name + ".") for other in names)


def module_rst(name: str, names: list[str]) -> list[str]:
    """The reStructuredText of one module's section."""
    title = f"``{name}``"
    lines = [f".. _api-{name}:", "", title, "-" * len(title), "", f".. automodule:: {name}"]
    if not _is_package_with_submodules(name, names):
        lines += ["   :members:", "   :show-inheritance:"]
    return lines + [""]


class AmbridgeAPI(SphinxDirective):
    """``.. ambridge-api::`` — one section per public module of ``ambridge``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        names = public_modules(skip=os.environ.get("AMBRIDGE_API_SKIP", ""))
        lines = [line for name in names for line in module_rst(name, names)]
        holder = nodes.section()
        holder.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="<ambridge-api>"), holder)
        return holder.children


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.add_directive("ambridge-api", AmbridgeAPI)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
