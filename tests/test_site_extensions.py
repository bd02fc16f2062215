"""The book's own Sphinx extensions (book/_ext) and the timing record behind the runtime badge.

Fast and browser-free; the built site itself is checked by tests/browser (``make test-site``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import ambridge_api  # noqa: E402
import runtime_badge  # noqa: E402
from ambridge.book.execute import record_timing  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "chapters" / "99_fixture.md"
DEFAULTS = {"seed": 0, "n": 10, "scale": 1.5, "device": "auto", "pause": 0.0}
CPU = "Intel(R) Xeon(R) Processor, 2 cores, torch 2.13.0+cpu (2 threads)"
GPU = "NVIDIA H200 (CUDA 13.0, torch 2.11.0+cu130)"


# --------------------------------------------------------------------------------------------------- API reference


def test_api_reference_lists_every_public_module_of_the_library():
    package = ROOT / "lib" / "ambridge"
    on_disk = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not any(part.startswith("_") for part in parts):
            on_disk.add(".".join(parts))
    assert set(ambridge_api.public_modules()) == on_disk


def test_api_reference_documents_each_object_once():
    names = ["ambridge", "ambridge.energies", "ambridge.icl", "ambridge.icl.model"]
    packages = [name for name in names if ":members:" not in "\n".join(ambridge_api.module_rst(name, names))]
    assert packages == ["ambridge", "ambridge.icl"], "a package with submodules shows its docstring only"


def test_api_reference_can_skip_a_module_in_progress():
    names = ambridge_api.public_modules(skip="ambridge.icl")
    assert "ambridge.energies" in names and not any(name.startswith("ambridge.icl") for name in names)


# --------------------------------------------------------------------------------------------------- runtime badge


@pytest.mark.parametrize(
    ("hardware", "label"),
    [
        (CPU, "2-core CPU"),
        (GPU, "NVIDIA H200"),
        ("NVIDIA H100 80GB HBM3 (CUDA 12.4, torch 2.5)", "NVIDIA H100 80GB HBM3"),
    ],
)
def test_hardware_label(hardware, label):
    assert runtime_badge.hardware_label(hardware) == label


@pytest.mark.parametrize(("seconds", "text"), [(4.42, "4.4 s"), (32.5, "32 s"), (142.1, "2.4 min"), (4000, "1.1 h")])
def test_format_seconds(seconds, text):
    assert runtime_badge.format_seconds(seconds) == text


@pytest.fixture()
def book(tmp_path):
    """A book root with the fixture chapter, its presets, and an empty artifacts folder."""
    chapters = tmp_path / "chapters"
    (chapters / "presets" / "99_fixture").mkdir(parents=True)
    shutil.copy(FIXTURE, chapters / "99_fixture.md")
    (chapters / "presets" / "99_fixture" / "quick.yaml").write_text("seed: 0\nn: 10\nscale: 1.5\ndevice: auto\npause: 0.0\n")
    (chapters / "presets" / "99_fixture" / "paper.yaml").write_text("n: 100\n")
    artifacts = chapters / "artifacts" / "99_fixture"
    artifacts.mkdir(parents=True)
    return tmp_path, artifacts


def _record(parameters, seconds, hardware, created, **extra):
    return {"parameters": parameters, "wall_time_s": seconds, "hardware": hardware, "created": created,
            "chapter": "99_fixture", "status": "ok", **extra}


def _write(folder: Path, name: str, record: dict) -> None:
    (folder / name).write_text(json.dumps(record))


def _items(html: str) -> dict[str, str]:
    """The text of each preset's entry in the badge."""
    import re

    text = {}
    for preset in runtime_badge.PRESETS:
        match = re.search(rf'data-preset="{preset}">(.*?)</span></span>', html)
        text[preset] = re.sub(r"<[^>]+>", "", match.group(1)) if match else ""
    return text


def test_badge_without_data_says_not_measured(book):
    root, _ = book
    items = _items(runtime_badge.badge_html(root, "99_fixture"))
    assert "not measured" in items["quick"] and "not measured" in items["paper"]


def test_badge_shows_the_newest_run_per_hardware_and_preset(book):
    root, artifacts = book
    _write(artifacts, "timing-cpu.json", _record(DEFAULTS, 33.0, CPU, "2026-01-02T00:00:00Z"))
    _write(artifacts, "old-cpu.json", _record(DEFAULTS, 90.0, CPU, "2026-01-01T00:00:00Z"))
    _write(artifacts, "run-gpu.json", _record({**DEFAULTS, "device": "cuda"}, 16.0, GPU, "2026-01-03T00:00:00Z"))
    _write(artifacts, "paper.json", _record({**DEFAULTS, "n": 100}, 600.0, CPU, "2026-01-04T00:00:00Z"))
    html = runtime_badge.badge_html(root, "99_fixture")
    items = _items(html)
    assert items["quick"].endswith("16 s on NVIDIA H200 · 33 s on 2-core CPU")
    assert "1.5 min" not in html, "an older run on the same hardware is not shown"
    assert items["paper"].endswith("10.0 min on 2-core CPU")


def test_badge_does_not_count_a_run_with_other_parameters(book):
    root, artifacts = book
    _write(artifacts, "tweaked.json", _record({**DEFAULTS, "scale": 2.0}, 5.0, CPU, "2026-01-01T00:00:00Z"))
    _write(artifacts, "failed.json", {**_record(DEFAULTS, 5.0, CPU, "2026-01-01T00:00:00Z"), "status": "failed"})
    _write(artifacts, "sweep.json", {"wall_time_s": 70.0, "hardware": GPU, "label": "a sweep at scale"})
    _write(artifacts, "table.json", {"rows": []})  # not a run record at all
    html = runtime_badge.badge_html(root, "99_fixture")
    assert "not measured" in _items(html)["quick"]
    assert "Other measured runs (3)" in html and "sweep.json: a sweep at scale" in html
    assert "table.json" not in html


def test_a_stale_measurement_is_not_shown(book):
    root, artifacts = book
    _write(artifacts, "timing-cpu.json", _record(DEFAULTS, 33.0, CPU, "2026-01-02T00:00:00Z"))
    md = root / "chapters" / "99_fixture.md"
    md.write_text(md.read_text().replace("n = 10 ", "n = 20 "))  # the chapter's defaults changed since
    assert "not measured" in _items(runtime_badge.badge_html(root, "99_fixture"))["quick"]


# --------------------------------------------------------------------------------------------------- timing record


def test_record_timing_writes_a_quick_preset_run_record_the_badge_reads(book):
    root, artifacts = book
    path = record_timing(root / "chapters" / "99_fixture.md", 12.345)
    assert path.parent == artifacts and path.name in ("timing-cpu.json", "timing-cuda.json")
    record = json.loads(path.read_text())
    assert record["parameters"] == DEFAULTS and record["wall_time_s"] == 12.345
    assert record["preset"] == "quick" and record["chapter"] == "99_fixture" and record["status"] == "ok"
    label = runtime_badge.hardware_label(record["hardware"])
    assert _items(runtime_badge.badge_html(root, "99_fixture"))["quick"].endswith(f"12 s on {label}")
