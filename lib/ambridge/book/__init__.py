"""The book's machinery: everything that runs chapters, beside them; the science never imports it.

- :mod:`ambridge.book.chapters` — finding a chapter by number, name or path;
- :mod:`ambridge.book.params` — a chapter's parameters cell, ``-p`` values, their merge with presets;
- :mod:`ambridge.book.presets` — the one preset (and small YAML mapping) loader;
- :mod:`ambridge.book.run` — ``make run``: rerun a chapter with new parameters (``book/reference/rerunning.md``);
- :mod:`ambridge.book.execute` — ``make execute``: re-execute chapters in place, byte-stable;
- :mod:`ambridge.book.sweep` — ``make sweep``: a chapter over a parameter grid on Dask (``book/reference/scale.md``),
  with :mod:`~ambridge.book.sweep_grid`, :mod:`~ambridge.book.sweep_task`, :mod:`~ambridge.book.worker` and
  :mod:`~ambridge.book.sweep_table`;
- :mod:`ambridge.book.records` — run records and the headline numbers a chapter publishes;
- :mod:`ambridge.book.errors` — :class:`~ambridge.book.errors.UsageError`, a bad command line.

The old paths ``ambridge.run``, ``ambridge.execute`` and ``ambridge.sweep`` are thin aliases of these modules (and
``python -m`` on them still works).
"""
