"""Finding the book's chapters: ``chapters/NN_slug.md`` by number, name or path.

Every command of the book's machinery names a chapter the same way — ``01``, ``1``, ``01_energy_is_nll``, or a path
to its ``.md`` or paired ``.ipynb`` — and gets its MyST-markdown source back: the runner
(:mod:`ambridge.book.run`, see ``book/reference/rerunning.md``), the executor (:mod:`ambridge.book.execute`) and the
sweeps (:mod:`ambridge.book.sweep`, see ``book/reference/scale.md``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UsageError

__all__ = ["CHAPTER_PATTERN", "book_root", "chapters_dir", "available_chapters", "resolve_chapter", "read_chapter"]

#: A chapter's file stem: ``NN_slug``.
CHAPTER_PATTERN = re.compile(r"^(\d+)_[A-Za-z0-9_-]+$")


def book_root() -> Path:
    """The book's root folder: :func:`ambridge.book.records.repo_root`, or the folder above ``lib/`` while the book
    has no ``_toc.yml`` yet (an editable install always sits at ``<root>/lib/ambridge``).

    Used for the default output folders of ``make run`` (``runs/<slug>/``) and ``make sweep`` (``runs/sweeps/``).
    """
    from .records import repo_root

    try:
        return repo_root()
    except FileNotFoundError:
        root = Path(__file__).resolve().parents[3]
        if (root / "chapters").is_dir():
            return root
        raise


def chapters_dir() -> Path:
    """The folder holding the book's ``NN_slug.md`` chapters."""
    return book_root() / "chapters"


def available_chapters() -> list[Path]:
    """Every ``chapters/NN_slug.md``, in chapter order (``make execute`` without a chapter runs them all)."""
    return sorted(p for p in chapters_dir().glob("*.md") if CHAPTER_PATTERN.match(p.stem))


def resolve_chapter(chapter: str | os.PathLike) -> Path:
    """Turn ``"01"``, ``"1"``, ``"01_energy_is_nll"`` or a path to a ``.md`` (or its paired ``.ipynb``) into the
    chapter's ``.md`` source; anything else is a :class:`~ambridge.book.errors.UsageError` listing the chapters.

    A path may lie outside ``chapters/`` (the tests use a fixture chapter that way).
    """
    text = os.fspath(chapter)
    path = Path(text)
    if path.suffix in (".md", ".ipynb") or os.sep in text or "/" in text:
        md = path.with_suffix(".md")
        for candidate in (md, chapters_dir() / md.name):  # "01_x.md" typed from the root also finds chapters/
            if candidate.is_file():
                return candidate.resolve()
        raise UsageError(f"no chapter source {md}")
    found = available_chapters()
    if text.isdigit():
        matches = [p for p in found if int(CHAPTER_PATTERN.match(p.stem).group(1)) == int(text)]
    else:
        matches = [p for p in found if p.stem == text]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(p.stem for p in found) or "(none)"
    raise UsageError(f"unknown chapter {text!r}; available chapters: {listing}")


def read_chapter(md: Path):
    """The chapter as a ``NotebookNode``, read with jupytext (papermill cannot read MyST markdown)."""
    import jupytext

    return jupytext.read(md)
