"""Alias of :mod:`ambridge.book.sweep` and its parts, kept for one release: sweeps moved into the book's machinery,
:mod:`ambridge.book`. ``python -m ambridge.sweep`` (``make sweep``) works as before (``book/reference/scale.md``).
"""

from ambridge.book.sweep import SweepResult, default_name, main, run_sweep
from ambridge.book.sweep_grid import Grid, Run, expand, load_grid, run_id
from ambridge.book.sweep_table import build_table, plot_summary, read_records
from ambridge.book.sweep_task import TransientFailure, execute_run

__all__ = [
    "Grid",
    "Run",
    "load_grid",
    "expand",
    "run_id",
    "execute_run",
    "TransientFailure",
    "read_records",
    "build_table",
    "plot_summary",
    "SweepResult",
    "default_name",
    "run_sweep",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
