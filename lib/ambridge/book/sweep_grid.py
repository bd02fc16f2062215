"""A sweep's grid file and the runs it expands to, each with its content address, the *run id*.

The grid file (YAML, read with :func:`ambridge.book.presets.read_yaml_mapping`)::

    preset: quick               # optional: preset name(s) or file(s), applied first, as with `ambridge.run -f`
    fixed:                      # optional: values shared by every run
      n_chains: 4000
    grid:                       # the product of these lists is the set of runs
      beta: [0.5, 1.0, 2.0, 4.0]
      n_units: [100, 200, 400]
      seed: [0, 1]
    figure:                     # optional: which swept parameters the summary figure puts on x / as lines
      x: beta
      hue: n_units
    name: beta-x-units          # optional: the sweep's folder, runs/sweeps/<name>/

A run's id (:func:`run_id`) hashes everything that decides what it computes: the chapter's source bytes, the full
parameter dict (the chapter's defaults with the sweep's values merged in, the seed among them) and the ``ambridge``
version. It is the run's key in the sweep's record store, so a resumed sweep skips exactly the runs it already did
(``book/reference/scale.md``, "Resuming, skipping, retrying").
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ambridge

from .chapters import read_chapter
from .errors import UsageError
from .params import jsonable_parameters, merge_parameters, parameters_cell, parse_parameters
from .presets import load_preset, read_yaml_mapping

__all__ = ["GRID_KEYS", "Grid", "Run", "load_grid", "run_id", "expand"]

#: The entries a grid file may have.
GRID_KEYS = ("name", "description", "preset", "fixed", "grid", "figure")


@dataclass
class Grid:
    """A parsed grid file: the lists to take the product of, the fixed values, the presets under them."""

    path: Path
    grid: dict[str, list]
    fixed: dict[str, Any] = field(default_factory=dict)
    presets: list[str] = field(default_factory=list)
    figure: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    description: str | None = None

    @property
    def swept(self) -> list[str]:
        return list(self.grid)


@dataclass(frozen=True)
class Run:
    """One point of the grid: its id, the full parameter dict, the values the runner injects, the swept values."""

    run_id: str
    parameters: dict
    chosen: dict
    point: dict


def load_grid(path: str | os.PathLike) -> Grid:
    """Read and check the shape of a grid file (names are checked against the chapter by :func:`expand`)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no grid file {path}")
    spec = read_yaml_mapping(path, "grid file", "with a `grid:` entry")
    extra = [key for key in spec if key not in GRID_KEYS]
    if extra:
        entries = f"entr{'ies' if len(extra) > 1 else 'y'} {', '.join(map(repr, extra))}"
        raise UsageError(f"grid file {path}: unknown {entries} (allowed: {', '.join(GRID_KEYS)}; parameters go "
                         "under `grid:` or `fixed:`)")
    grid, fixed = spec.get("grid") or {}, spec.get("fixed") or {}
    if not isinstance(grid, dict) or not grid:
        raise UsageError(f"grid file {path}: `grid:` must map parameter names to lists of values")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UsageError(f"grid file {path}: `grid: {name}` must be a non-empty list (a single value goes under "
                             "`fixed:`)")
    if not isinstance(fixed, dict):
        raise UsageError(f"grid file {path}: `fixed:` must map parameter names to values")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise UsageError(f"grid file {path}: {', '.join(both)} both swept and fixed")
    presets = spec.get("preset") or []
    presets = [presets] if isinstance(presets, str) else presets
    if not isinstance(presets, list) or not all(isinstance(p, str) for p in presets):
        raise UsageError(f"grid file {path}: `preset:` must be a preset name or file, or a list of them")
    figure = spec.get("figure") or {}
    if not isinstance(figure, dict) or any(figure.get(k) not in (None, *grid) for k in ("x", "hue")):
        raise UsageError(f"grid file {path}: `figure:` may set `x:` and `hue:` to swept parameters ({', '.join(grid)})")
    return Grid(path, grid, fixed, presets, figure, spec.get("name"), spec.get("description"))


def run_id(source: bytes, parameters: dict) -> str:
    """The content address of a run: 16 hex digits of a hash of the chapter source, its full parameter dict and the
    ``ambridge`` version (read when called). Same chapter, same values, same library: same id, wherever and
    whenever it runs; change any of them (a seed, a library release) and it is another run."""
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(source).digest())
    digest.update(json.dumps(jsonable_parameters(parameters), sort_keys=True, default=repr).encode())
    digest.update(ambridge.__version__.encode())
    return digest.hexdigest()[:16]


def expand(md: Path, grid: Grid, *, gpu: bool = False) -> list[Run]:
    """The runs of a grid, in grid order (the first swept parameter varies slowest); points that are the same run
    (a value equal to its default) appear once.

    Names and presets are checked with the runner's own :func:`~ambridge.book.params.merge_parameters`: an unknown
    name raises :class:`~ambridge.book.errors.UsageError` here, before anything is submitted. With ``gpu``, a
    chapter's ``device`` parameter defaults to ``"cuda"``.
    """
    defaults = parse_parameters(parameters_cell(read_chapter(md)).source)
    presets = [(preset, load_preset(preset, md)) for preset in grid.presets]
    where = grid.path.name
    device = "cuda" if gpu and "device" in defaults and "device" not in {**grid.grid, **grid.fixed} else None
    source = md.read_bytes()
    runs: dict[str, Run] = {}
    for values in itertools.product(*grid.grid.values()):
        point = dict(zip(grid.grid, values))
        layers = [*presets, (f"{where}, `fixed:`", grid.fixed), (f"{where}, `grid:`", point)]
        chosen = merge_parameters(defaults, layers, device=device)
        parameters = jsonable_parameters({**defaults, **chosen})
        rid = run_id(source, parameters)
        runs.setdefault(rid, Run(rid, parameters, jsonable_parameters(chosen), {k: chosen[k] for k in point}))
    return list(runs.values())
