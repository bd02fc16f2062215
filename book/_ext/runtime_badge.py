"""A runtime and hardware badge under the title of every chapter page, built from measured run records.

Nothing in the badge is typed by hand. For the chapter ``chapters/<slug>`` it reads every JSON file directly in
``chapters/artifacts/<slug>/`` that is a run record (an object with a numeric ``wall_time_s`` and a ``hardware``
string, as :func:`ambridge.book.records.run_record` writes them) and sorts them into:

- **runs of a preset**: whole-chapter runs (``"chapter": "<slug>"``, ``"status": "ok"``) whose parameters are exactly
  the chapter's defaults (the quick preset, what the page shows), or the defaults overlaid with
  ``chapters/presets/<slug>/paper.yaml`` (the paper preset), the device aside. These are
  written by ``python -m ambridge.execute`` (``timing-<device>.json``, the quick preset) and by
  ``python -m ambridge.run`` when a run record is copied into the artifacts. A run made with parameters the chapter
  no longer has as its defaults no longer matches, and the badge says "not measured" rather than show a stale time;
- **other measured runs**: any other run record there (a paper-scale sweep, a training run, a benchmark), listed
  under the badge with its label, wall time and hardware.

For each preset the badge shows the newest run per kind of hardware ("1.1 min on a 2-core CPU · 16 s on NVIDIA
H200"), and "not measured" when there is none.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from docutils import nodes

PRESETS = ("quick", "paper")
PRESET_LABELS = {"quick": "Quick preset (this page)", "paper": "Paper preset"}
RUNNING_PAGE = "book/course/running"


# --------------------------------------------------------------------------------------------------- reading


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_records(folder: Path) -> list[tuple[Path, dict]]:
    """``(path, record)`` for every run record directly in ``folder`` (sorted by file name)."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        record = _read_json(path)
        if (
            isinstance(record, dict)
            and isinstance(record.get("wall_time_s"), (int, float))
            and isinstance(record.get("hardware"), str)
        ):
            found.append((path, record))
    return found


def preset_parameters(chapters: Path, slug: str, preset: str) -> dict | None:
    """The parameters of a preset run: the chapter's defaults (its parameters cell) for ``quick``, which is what
    the page shows, and the defaults overlaid with ``presets/<slug>/<preset>.yaml`` for any other preset. None if
    they cannot be read."""
    from ambridge.book.params import chapter_parameters, jsonable_parameters
    from ambridge.book.presets import load_preset

    md = chapters / f"{slug}.md"
    path = chapters / "presets" / slug / f"{preset}.yaml"
    if not md.is_file() or (preset != "quick" and not path.is_file()):
        return None
    try:
        defaults = jsonable_parameters(chapter_parameters(md))
        values = {} if preset == "quick" else load_preset(str(path), md)
    except Exception:  # a chapter being written may not parse yet: then nothing matches
        return None
    return {**defaults, **values}


def _without_device(parameters: dict) -> dict:
    return {k: v for k, v in parameters.items() if k != "device"}


def is_preset_run(record: dict, slug: str, expected: dict | None) -> bool:
    """Whether ``record`` is a successful whole-chapter run with exactly the ``expected`` parameters."""
    parameters = record.get("parameters")
    return (
        expected is not None
        and record.get("chapter") == slug
        and record.get("status") == "ok"
        and isinstance(parameters, dict)
        and _without_device(parameters) == _without_device(expected)
    )


# --------------------------------------------------------------------------------------------------- wording


def hardware_label(hardware: str) -> str:
    """A short name for a hardware summary: ``"NVIDIA H200"``, ``"2-core CPU"``."""
    cores = re.search(r",\s*(\d+) cores", hardware)
    if "CUDA" in hardware or hardware.startswith(("NVIDIA", "AMD Instinct")):
        return hardware.split(" (")[0].strip()
    if cores:
        return f"{cores.group(1)}-core CPU"
    return hardware.split(",")[0].strip() or "unknown hardware"


def format_seconds(seconds: float) -> str:
    """``"12 s"``, ``"2.4 min"``, ``"1.3 h"``."""
    if seconds < 59.5:
        return f"{seconds:.0f} s" if seconds >= 9.5 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _newest_per_hardware(runs: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    newest: dict[str, tuple[Path, dict]] = {}
    for path, record in sorted(runs, key=lambda pr: str(pr[1].get("created", ""))):
        newest[hardware_label(record["hardware"])] = (path, record)
    return sorted(newest.values(), key=lambda pr: pr[1]["wall_time_s"])


def _measurement(path: Path, record: dict, root: Path) -> str:
    where = path.relative_to(root) if path.is_relative_to(root) else path
    tooltip = f"{record['hardware']}; measured {record.get('created', 'at an unrecorded date')}; {where}"
    return (
        f'<span class="ambridge-badge-run" title="{html.escape(tooltip)}">'
        f"{format_seconds(record['wall_time_s'])} on {html.escape(hardware_label(record['hardware']))}</span>"
    )


def _other_label(path: Path, record: dict) -> str:
    for key in ("label", "benchmark", "command"):
        if isinstance(record.get(key), str) and record[key]:
            return f"{path.name}: {record[key]}"
    return path.name


def badge_html(root: Path, slug: str, running_uri: str | None = None) -> str:
    """The badge of chapter ``slug`` (HTML), from ``<root>/chapters/artifacts/<slug>/``."""
    chapters = root / "chapters"
    records = run_records(chapters / "artifacts" / slug)
    used: set[Path] = set()
    rows = []
    for preset in PRESETS:
        expected = preset_parameters(chapters, slug, preset)
        runs = [(p, r) for p, r in records if is_preset_run(r, slug, expected)]
        used.update(p for p, _ in runs)
        measured = " · ".join(_measurement(p, r, root) for p, r in _newest_per_hardware(runs))
        text = measured or '<span class="ambridge-badge-missing">not measured</span>'
        rows.append(
            f'<span class="ambridge-badge-item" data-preset="{preset}">'
            f'<span class="ambridge-badge-key">{PRESET_LABELS[preset]}:</span> {text}</span>'
        )
    others = [(p, r) for p, r in records if p not in used]
    details = ""
    if others:
        items = "".join(
            f"<li>{html.escape(_other_label(p, r))} — {_measurement(p, r, root)}</li>"
            for p, r in sorted(others, key=lambda pr: pr[0].name)
        )
        details = (
            f'<details class="ambridge-badge-others"><summary>Other measured runs ({len(others)})</summary>'
            f"<ul>{items}</ul></details>"
        )
    link = f' <a class="ambridge-badge-help" href="{html.escape(running_uri)}">How to run it</a>' if running_uri else ""
    return (
        f'<div class="ambridge-runtime-badge" data-chapter="{html.escape(slug)}">'
        f'<span class="ambridge-badge-title">Runtime</span> {" ".join(rows)}{link}{details}</div>'
    )


# --------------------------------------------------------------------------------------------------- Sphinx


def _slug(docname: str) -> str | None:
    parts = docname.split("/")
    if len(parts) == 2 and parts[0] == "chapters" and re.fullmatch(r"\d+_[A-Za-z0-9_-]+", parts[1]):
        return parts[1]
    return None


def _root(app) -> Path:
    return Path(app.srcdir)


def _fingerprint(app, slug: str) -> str:
    return badge_html(_root(app), slug)


def _remember(app, doctree) -> None:
    slug = _slug(app.env.docname)
    if slug:
        if not hasattr(app.env, "ambridge_badges"):
            app.env.ambridge_badges = {}
        app.env.ambridge_badges[app.env.docname] = _fingerprint(app, slug)


def _outdated(app, env, added, changed, removed) -> list[str]:
    """Chapters whose measured data changed since they were last read (new records, edited presets)."""
    stored = getattr(env, "ambridge_badges", {})
    return [d for d, old in stored.items() if d in env.found_docs and _fingerprint(app, _slug(d)) != old]


def _purge(app, env, docname) -> None:
    getattr(env, "ambridge_badges", {}).pop(docname, None)


def _merge(app, env, docnames, other) -> None:
    if not hasattr(env, "ambridge_badges"):
        env.ambridge_badges = {}
    env.ambridge_badges.update(getattr(other, "ambridge_badges", {}))


def _insert(app, doctree, docname) -> None:
    slug = _slug(docname)
    if not slug or app.builder.format != "html":
        return
    running = None
    if RUNNING_PAGE in app.env.found_docs:
        running = app.builder.get_relative_uri(docname, RUNNING_PAGE)
    badge = nodes.raw("", badge_html(_root(app), slug, running), format="html")
    title = next(iter(doctree.findall(nodes.title)), None)
    if title is None:
        doctree.insert(0, badge)
    else:
        title.parent.insert(title.parent.index(title) + 1, badge)


def _add_static(app) -> None:
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))
    app.add_css_file("runtime_badge.css")


def setup(app):
    app.connect("builder-inited", _add_static)
    app.connect("doctree-read", _remember)
    app.connect("env-get-outdated", _outdated)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _insert)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
