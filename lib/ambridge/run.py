"""Alias of :mod:`ambridge.book.run` and its helpers, kept for one release: the chapter runner moved into the book's
machinery, :mod:`ambridge.book`. ``python -m ambridge.run`` (``make run``) works as before
(``book/reference/rerunning.md``).
"""

from ambridge.book.chapters import CHAPTER_PATTERN, available_chapters, chapters_dir, read_chapter, resolve_chapter
from ambridge.book.errors import UsageError
from ambridge.book.params import (
    Unevaluated,
    chapter_parameters,
    merge_parameters,
    parameters_cell,
    parameters_hash,
    parse_parameters,
    parse_value,
)
from ambridge.book.presets import find_preset, load_preset, presets_dir, read_yaml_mapping
from ambridge.book.run import default_output, main

__all__ = [
    "UsageError",
    "Unevaluated",
    "CHAPTER_PATTERN",
    "chapters_dir",
    "available_chapters",
    "resolve_chapter",
    "read_chapter",
    "parameters_cell",
    "parse_parameters",
    "chapter_parameters",
    "presets_dir",
    "load_preset",
    "find_preset",
    "read_yaml_mapping",
    "parse_value",
    "merge_parameters",
    "parameters_hash",
    "default_output",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
