"""The one error of the book's machinery: a bad command line, reported in one line with exit code 2.

Raised by the chapter finder (:mod:`ambridge.book.chapters`), the parameter merge (:mod:`ambridge.book.params`),
the preset loader (:mod:`ambridge.book.presets`) and the sweep's grid files (:mod:`ambridge.book.sweep_grid`); the
command lines (``python -m ambridge.run``, ``ambridge.execute``, ``ambridge.sweep``) print it as ``error: ...``.
A value a chapter refuses is not a usage error: the chapter's validation cell raises
:class:`ambridge.checks.ParameterError` (see ``book/reference/rerunning.md``).
"""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """A bad command line: unknown chapter, parameter or preset, or a malformed preset or grid file.

    Used by ``make run``, ``make execute`` and ``make sweep``: printed as one line, exit code 2.
    """
