"""``environment.yml`` (for conda users) pins exactly what ``requirements.lock`` pins, so the two cannot drift.

No conda can be installed on the build machines, so this checks the file's shape, not that conda solves it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _lock_pins() -> list[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_environment_shape():
    env = _environment()
    assert env["name"] == "ambridge-book"
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    assert [d for d in deps if isinstance(d, dict) and "pip" in d], "no pip: section"


def test_pip_section_is_the_lock_file():
    pip = next(d["pip"] for d in _environment()["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert pip[-1] == "-e .", "the book's own library should come last, installed editable"
    assert pip[:-1] == _lock_pins(), "environment.yml and requirements.lock differ: copy the lock's pins over"
