"""Alias of :mod:`ambridge.book.execute`, kept for one release: re-executing chapters in place moved into the book's
machinery, :mod:`ambridge.book`. ``python -m ambridge.execute`` (``make execute``) works as before
(``book/reference/rerunning.md``, "After editing a chapter").
"""

from ambridge.book.execute import execute_chapter, main, record_timing

__all__ = ["execute_chapter", "record_timing", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
