"""Tables a chapter prints from measured values — the claims → evidence table above all."""

from __future__ import annotations

from typing import Sequence

__all__ = ["markdown_table"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]):
    """Render rows as a Markdown table (an ``IPython.display.Markdown`` object; a plain string without IPython).

    The text is deterministic, so nbval can compare it and the book renders it as a real table.
    """
    width = len(header)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"every row needs {width} cells, got {len(row)}: {row!r}")

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    text = "\n".join(lines)
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with the book's stack
        return text
    return Markdown(text)
