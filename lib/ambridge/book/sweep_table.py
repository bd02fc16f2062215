"""A sweep's results as one table and one figure, built from its record store.

``out/records.jsonl`` (an :class:`ambridge.store.RecordStore`, keyed by run id) holds one run record per finished
run. :func:`build_table` turns the records of a grid's runs into the tidy ``table.csv`` (one row per run: run_id,
status, every parameter, ``result.<name>`` for each number the chapter published, wall time, hardware, commit,
error) and :func:`plot_summary` draws ``summary.png`` from it (``book/reference/scale.md``, "What a sweep writes").
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from ..store import RecordStore
from .sweep_grid import Run
from .sweep_task import error_text

__all__ = ["RECORDS", "record_store", "read_records", "build_table", "plot_summary"]

#: The record store's file name in a sweep's output folder.
RECORDS = "records.jsonl"


def record_store(out: str | os.PathLike) -> RecordStore:
    """The sweep's record store, ``out/records.jsonl``: one run record per line, keyed by run id (the last record
    of a run id wins, so a ``--force`` rerun supersedes the old one)."""
    return RecordStore(Path(out) / RECORDS)


def read_records(out: str | os.PathLike, runs: Sequence[Run]) -> dict[str, dict]:
    """The records of these runs found in the record store of ``out`` (one per run id, by construction)."""
    store = record_store(out)
    return {r.run_id: store.get(r.run_id) for r in runs if r.run_id in store}


def build_table(runs: Sequence[Run], records: dict[str, dict]):
    """The tidy table (a pandas DataFrame): one row per run that has a record, in grid order; columns run_id,
    status, every parameter, ``result.<name>`` for every published result, wall_time_s, hardware, commit, error."""
    import pandas as pd

    names = list(runs[0].parameters) if runs else []
    results: list[str] = []
    rows = []
    for r in runs:
        record = records.get(r.run_id)
        if record is None:
            continue
        published = record.get("results") or {}
        results += [k for k in published if k not in results]
        rows.append({"run_id": r.run_id, "status": record.get("status", "failed"),
                     **{name: record.get("parameters", r.parameters).get(name) for name in names},
                     **{f"result.{k}": v for k, v in published.items()},
                     "wall_time_s": record.get("wall_time_s"), "hardware": record.get("hardware", ""),
                     "commit": record.get("commit", ""), "error": error_text(record.get("error"))})
    columns = ["run_id", "status", *names, *(f"result.{k}" for k in results), "wall_time_s", "hardware", "commit",
               "error"]
    table = pd.DataFrame(rows, columns=columns)
    for column in [*names, *(f"result.{k}" for k in results)]:  # integers stay integers beside failed (empty) rows
        values = [row.get(column) for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            table[column] = table[column].astype("Int64")
    return table


def _numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and series.notna().any()


def plot_summary(table, swept: Sequence[str], path: Path, *, title: str, x: str | None = None,
                 hue: str | None = None) -> Path | None:
    """The generic summary figure: for each numeric result, its mean against ``x`` (default: the first swept
    parameter), one line per value of ``hue`` (default: the second), the band spanning min to max over the other
    swept parameters (e.g. seeds). Only runs with status ok are drawn. Returns the path, or None if nothing to draw."""
    import numpy as np
    from matplotlib.figure import Figure

    from ambridge.plotting import PALETTE, use_book_style

    use_book_style()
    ok = table[table["status"] == "ok"]
    results = [c for c in table.columns if c.startswith("result.") and _numeric(ok[c])]
    if ok.empty or not results:
        return None
    x = x or swept[0]
    hue = hue if hue is not None else next((s for s in swept if s != x), None)
    rest = [s for s in swept if s not in (x, hue)]
    xs = list(dict.fromkeys(sorted(ok[x].unique(), key=_sort_key)))
    numeric_x = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    log_x = numeric_x and len(xs) >= 3 and min(xs) > 0 and max(xs) / min(xs) >= 4
    position = {v: (v if numeric_x else i) for i, v in enumerate(xs)}
    hues = sorted(ok[hue].unique(), key=_sort_key) if hue else [None]

    ncols = min(3, len(results))
    nrows = math.ceil(len(results) / ncols)
    fig = Figure(figsize=(max(6.0, 4.3 * ncols), 3.1 * nrows + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, column in zip(axes, results):
        for i, h in enumerate(hues):
            rows = ok if h is None else ok[ok[hue] == h]
            stats = rows.groupby(x)[column].agg(["mean", "min", "max", "count"]).reindex(xs).dropna(subset=["mean"])
            px = [position[v] for v in stats.index]
            colour = PALETTE[i % len(PALETTE)]
            label = f"{hue} = {h}" if hue else None
            ax.plot(px, stats["mean"], "o-", color=colour, label=label, markersize=4)
            if (stats["count"] > 1).any():
                ax.fill_between(px, stats["min"], stats["max"], color=colour, alpha=0.18, linewidth=0)
        if log_x:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks([position[v] for v in xs], [f"{v:g}" if numeric_x else str(v) for v in xs])
        ax.set(xlabel=x, title=column.removeprefix("result."))
    for ax in axes[len(results):]:
        ax.set_visible(False)
    if hue:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(hues), 6))
    spread = f"line: mean, band: min to max over {', '.join(rest)}" if rest else "one run per point"
    failed = len(table) - len(ok)
    note = f"; {failed} failed run{'s' if failed > 1 else ''} not shown" if failed else ""
    fig.suptitle(f"{title}: {len(ok)} runs\n{spread}{note}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _sort_key(value):
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))
