"""Presets: named sets of a chapter's parameter values, ``chapters/presets/<slug>/<name>.yaml``.

This is the book's one loader of presets and other small YAML mappings (PyYAML's ``safe_load``): the runner's
``-f`` (``book/reference/rerunning.md``), a sweep's grid file and its ``preset:`` entry (``book/reference/scale.md``),
and the runtime badge of each chapter page (``book/_ext/runtime_badge.py``) all read through it. ``quick.yaml`` is
exactly the chapter's defaults; ``paper.yaml`` is the paper's scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError

__all__ = ["read_yaml_mapping", "presets_dir", "preset_names", "find_preset", "load_preset"]


def read_yaml_mapping(path: Path, what: str, shape: str) -> dict:
    """A YAML file that must hold a mapping (a preset, a sweep's grid file); an empty file is ``{}``.

    Invalid YAML or anything but a mapping is a :class:`~ambridge.book.errors.UsageError` naming ``what`` the file
    is and the ``shape`` it should have (e.g. ``"of parameter: value"``).
    """
    try:
        values = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise UsageError(f"{what} {path} is not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise UsageError(f"{what} {path} must be a YAML mapping {shape}")
    return values


def presets_dir(md: Path) -> Path:
    """``<chapters>/presets/<slug>/`` for the chapter ``<chapters>/<slug>.md``."""
    return md.parent / "presets" / md.stem


def preset_names(folder: Path) -> list[str]:
    """The names of the presets in ``folder`` (the stems of its ``.yaml`` files), sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def find_preset(preset: str, folder: Path, owner: str, shape: str) -> dict[str, Any]:
    """Read ``preset``: a YAML file path, or a bare name meaning ``folder/<name>.yaml``.

    A missing one is a :class:`~ambridge.book.errors.UsageError` listing the presets of ``owner`` in ``folder``; the
    file must hold a mapping ``shape``. Chapters use it through :func:`load_preset`; a benchmark with presets of its
    own (not a chapter's) calls it with its own folder.
    """
    path = Path(preset)
    if not path.is_file() and path.suffix == "" and "/" not in preset:
        path = Path(folder) / f"{preset}.yaml"
    if not path.is_file():
        names = ", ".join(preset_names(folder)) or "(none)"
        raise UsageError(f"no preset {preset!r} (looked for {path}); presets of {owner}: {names}")
    return read_yaml_mapping(path, "preset", shape)


def load_preset(preset: str, md: Path) -> dict[str, Any]:
    """A chapter's preset: a YAML file path, or a bare name (``paper``) meaning ``presets/<slug>/<name>.yaml``.

    Used by ``make run ARGS="-f paper"``, by a sweep's ``preset:`` entry and by the runtime badge.
    """
    return find_preset(preset, presets_dir(md), md.stem, "of parameter: value")
