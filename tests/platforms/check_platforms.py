"""Does ``requirements.lock`` install on the platforms readers use? (``make check-platforms``; not part of make test.)

For each target — Linux x86-64 and arm64 (manylinux, glibc 2.28 or later), macOS arm64 and x86-64 (macOS 14 or
later), Windows x86-64, each on CPython 3.11, 3.12 and 3.13 — it asks the package index:

1. does every pin of the lock (and the book's own ``pyproject.toml`` requirements) have a wheel the target can
   install, at the pinned version, for that Python (``Requires-Python`` included)? A pin without one *blocks*;
2. do the pins' own requirements, with the *target's* environment markers (``sys_platform``, ``platform_machine``,
   ``python_version``...), hold among the pins? A pinned version outside a requirement is a *conflict*; a
   requirement the lock does not pin (``colorama`` on Windows, the CUDA libraries of the index's Linux torch) is an
   *unpinned addition*: pip would pick it there, and it must have a wheel too.

Nothing is installed and no wheel is downloaded: file lists come from the index's JSON simple API, dependencies
from each wheel's metadata file (PEP 658; a few KB), else from the wheel's ``METADATA`` read by HTTP range
requests. ``pip install --dry-run --platform ...`` is not used because pip evaluates environment markers for the
machine it runs on, not the target (a macOS resolve then asks for Linux's CUDA packages), and it downloads every
wheel when the index does not announce metadata files (torch alone is 0.1-0.5 GB per target).

    .venv/bin/python tests/platforms/check_platforms.py               # print the table
    .venv/bin/python tests/platforms/check_platforms.py --write tests/platforms/platforms.md

Exit status 0 when every target resolves except those in ``UNSUPPORTED`` (which must still fail, with the reason
given there), 1 otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import email.parser
import functools
import io
import json
import os
import ssl
import sys
import tomllib
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[2]
PYTHONS = [(3, 11), (3, 12), (3, 13)]
GLIBC = (2, 28)  # torch 2.13's Linux wheels are manylinux_2_28: Debian 10+, Ubuntu 20.04+, RHEL 8+
MACOS = (14, 0)  # torch 2.13's macOS wheels are macosx_14_0
LATEST_PATCH = 30  # "Python 3.12" means any 3.12.x; a pin that needs 3.12.5 or later is noted, not blocked

# (os, cpu) -> why the combination is not supported; the check fails if such a target starts to resolve.
UNSUPPORTED = {
    ("macOS", "x86-64"): "torch publishes no wheels for Intel Macs (none since 2.2), so torch==2.13.0 has none "
                         "(libcst, needed only by the mutation tests, has none either)",
}


# --------------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Platform:
    os: str  # "Linux", "macOS", "Windows"
    cpu: str  # "x86-64", "arm64"
    tags: tuple[str, ...]  # platform tags, most specific first
    markers: tuple[tuple[str, str], ...]  # environment-marker values that depend on the platform

    @property
    def name(self) -> str:
        return f"{self.os} {self.cpu}"


def manylinux_platforms(arch: str, glibc: tuple[int, int] = GLIBC) -> list[str]:
    """Platform tags a Linux with this glibc installs, newest first, the legacy aliases beside their glibc."""
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for minor in range(glibc[1], 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in legacy and (minor == 17 or arch in ("x86_64", "i686")):
            tags.append(f"{legacy[minor]}_{arch}")
    return tags


def platforms() -> list[Platform]:
    def env(os_name, sys_platform, system, machine):
        return (("os_name", os_name), ("sys_platform", sys_platform), ("platform_system", system),
                ("platform_machine", machine))

    return [
        Platform("Linux", "x86-64", tuple(manylinux_platforms("x86_64")), env("posix", "linux", "Linux", "x86_64")),
        Platform("Linux", "arm64", tuple(manylinux_platforms("aarch64")), env("posix", "linux", "Linux", "aarch64")),
        Platform("macOS", "arm64", tuple(mac_platforms(MACOS, "arm64")), env("posix", "darwin", "Darwin", "arm64")),
        Platform("macOS", "x86-64", tuple(mac_platforms(MACOS, "x86_64")), env("posix", "darwin", "Darwin", "x86_64")),
        Platform("Windows", "x86-64", ("win_amd64",), env("nt", "win32", "Windows", "AMD64")),
    ]


@dataclass(frozen=True)
class Target:
    platform: Platform
    python: tuple[int, int]

    @property
    def name(self) -> str:
        return f"{self.platform.name}, Python {self.python[0]}.{self.python[1]}"

    def tags(self) -> list[Tag]:
        """Every wheel tag the target installs, in pip's order of preference (most specific first)."""
        interpreter = f"cp{self.python[0]}{self.python[1]}"
        plats = list(self.platform.tags)
        tags = list(cpython_tags(self.python, abis=[interpreter], platforms=plats))
        tags += [t for t in compatible_tags(self.python, interpreter, plats) if t not in tags]
        return tags

    def environment(self) -> dict[str, str]:
        version = f"{self.python[0]}.{self.python[1]}"
        env = {"implementation_name": "cpython", "platform_python_implementation": "CPython",
               "python_version": version, "python_full_version": f"{version}.0",
               "implementation_version": f"{version}.0", "platform_release": "", "platform_version": ""}
        env.update(self.platform.markers)
        return env


def targets() -> list[Target]:
    return [Target(p, py) for p in platforms() for py in PYTHONS]


# --------------------------------------------------------------------------------------------------- the lock


def read_lock(path: Path) -> dict[str, Version]:
    """``name==version`` lines of the lock, by canonical name (comments and blank lines skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==":
            raise ValueError(f"{path.name}: {line!r} is not an exact pin")
        pins[canonicalize_name(req.name)] = Version(spec[0].version)
    return pins


def project_requirements(pyproject: Path) -> list[Requirement]:
    """The book's own requirements: the library's dependencies and every optional group."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        lines += group
    return [Requirement(line) for line in lines]


# --------------------------------------------------------------------------------------------------- choosing wheels


@dataclass
class Releases:
    """A project's files on the index: wheels by version (each with its tags), and the versions with a source."""

    wheels: dict[Version, list[tuple[dict, frozenset[Tag]]]] = field(default_factory=dict)
    sources: set[Version] = field(default_factory=set)


def releases(files: list[dict]) -> Releases:
    """Sort the entries of the index's JSON simple API (``filename``, ``url``, ``requires-python``) by version."""
    found = Releases()
    for entry in files:
        filename = entry["filename"]
        try:
            if filename.endswith(".whl"):
                _, version, _, tags = parse_wheel_filename(filename)
                found.wheels.setdefault(version, []).append((entry, tags))
            elif filename.endswith((".tar.gz", ".zip")):
                found.sources.add(Version(filename.rsplit(".", 2 if filename.endswith(".tar.gz") else 1)[0]
                                          .rsplit("-", 1)[-1]))
        except (InvalidVersion, ValueError):  # a file name pip could not read either: skipped, as pip does
            continue
    return found


@functools.lru_cache(maxsize=None)
def preference(target: Target) -> dict[Tag, int]:
    return {tag: rank for rank, tag in enumerate(target.tags())}


def wheel_for(found: Releases, version: Version, target: Target) -> tuple[dict | None, str]:
    """The wheel of ``version`` the target would install, or None and why there is none."""
    # Requires-Python is asked of the newest patch release; ``oldest_patch`` says which patches a wheel excludes.
    ranks, python = preference(target), Version(f"{target.python[0]}.{target.python[1]}.{LATEST_PATCH}")
    wheels = found.wheels.get(version, [])
    best = None
    for entry, tags in wheels:
        requires = entry.get("requires-python")
        if requires and python not in SpecifierSet(requires):
            continue
        rank = min((ranks[t] for t in tags if t in ranks), default=None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry)
    if best:
        return best[1], ""
    if not wheels:
        return None, "only a source distribution" if version in found.sources else "no such version on the index"
    pythons = {e.get("requires-python") for e, _ in wheels if e.get("requires-python")}
    if pythons and all(python not in SpecifierSet(p) for p in pythons):
        return None, f"requires Python {' / '.join(sorted(pythons))}"
    shown = sorted({str(t) for _, tags in wheels for t in tags})
    return None, f"no wheel for this platform and Python (has {_summarise(shown)})"


def oldest_patch(wheel: dict, target: Target) -> int:
    """The first patch release of the target's Python that the wheel's ``Requires-Python`` admits (0 for most)."""
    requires = SpecifierSet(wheel.get("requires-python") or "")
    major, minor = target.python
    return next((p for p in range(LATEST_PATCH + 1) if Version(f"{major}.{minor}.{p}") in requires), 0)


def _summarise(tags: list[str], limit: int = 4) -> str:
    return ", ".join(tags[:limit]) + (f" and {len(tags) - limit} more" if len(tags) > limit else "")


# --------------------------------------------------------------------------------------------------- the index


def default_index() -> str:
    """The index pip uses by default (``PIP_INDEX_URL`` if set), without naming a host here."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].rstrip("/")
    from pip._internal.models.index import PyPI

    return PyPI.simple_url.rstrip("/")


class Index:
    """The package index's JSON simple API and wheels' metadata, each fetched once."""

    def __init__(self, url: str, timeout: float = 60):
        self.url, self.timeout = url, timeout
        # One TLS context for every request (building one loads the CA store: ~0.1 s of CPU each time).
        context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        self._files: dict[str, Releases] = {}
        self._metadata: dict[str, list[str]] = {}

    def _get(self, url: str, headers: dict | None = None) -> bytes:
        request = urllib.request.Request(url, headers=headers or {})
        with self.opener.open(request, timeout=self.timeout) as response:
            return response.read()

    def releases(self, name: str) -> Releases:
        if name not in self._files:
            try:
                body = self._get(f"{self.url}/{name}/", {"Accept": "application/vnd.pypi.simple.v1+json"})
                self._files[name] = releases(json.loads(body)["files"])
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
                self._files[name] = Releases()
        return self._files[name]

    def requires_dist(self, wheel: dict) -> list[str]:
        """``Requires-Dist`` of a wheel: from its metadata file, else from the wheel read in ranges."""
        url = wheel["url"]
        if url not in self._metadata:
            try:
                text = self._get(url.split("#", 1)[0] + ".metadata").decode("utf-8", "replace")
            except urllib.error.HTTPError:
                text = self._metadata_by_ranges(url)
            message = email.parser.Parser().parsestr(text, headersonly=True)
            self._metadata[url] = message.get_all("Requires-Dist") or []
        return self._metadata[url]

    def _metadata_by_ranges(self, url: str) -> str:
        with zipfile.ZipFile(_RangeFile(url, self.opener, self.timeout)) as wheel:
            name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
            return wheel.read(name).decode("utf-8", "replace")


class _RangeFile(io.RawIOBase):
    """A remote file read with HTTP range requests, in blocks (enough for ``zipfile`` to find one member)."""

    BLOCK = 1 << 18

    def __init__(self, url: str, opener, timeout: float):
        self.url, self.opener, self.timeout = url, opener, timeout
        self.pos, self.size, self.blocks = 0, 0, {}
        self._fetch(f"bytes=-{self.BLOCK}")  # the end of the zip (its central directory), and the file's size

    def _fetch(self, byte_range: str) -> None:
        request = urllib.request.Request(self.url, headers={"Range": byte_range})
        with self.opener.open(request, timeout=self.timeout) as response:
            whole = response.status == 200  # a server that ignores ranges sends the whole file
            total = response.headers.get("Content-Range", "").rsplit("/", 1)[-1]
            data = response.read()
        if whole:
            self.size, self.blocks = len(data), {0: data}
            return
        self.size = self.size or int(total)
        start = int(response.headers["Content-Range"].split()[1].split("-")[0])
        self.blocks[start] = data

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        out = b""
        while self.pos < end:
            start, block = self._block(self.pos)
            if block is None:
                start = self.pos - self.pos % self.BLOCK
                self._fetch(f"bytes={start}-{min(self.size, start + self.BLOCK) - 1}")
                start, block = self._block(self.pos)
            piece = block[self.pos - start:end - start]
            out += piece
            self.pos += len(piece)
        return out

    def _block(self, pos: int) -> tuple[int, bytes | None]:
        return next(((s, b) for s, b in self.blocks.items() if s <= pos < s + len(b)), (pos, None))


# --------------------------------------------------------------------------------------------------- one target


@dataclass
class Result:
    target: Target
    blocks: dict[str, str] = field(default_factory=dict)  # pin -> why it has no wheel there
    conflicts: list[str] = field(default_factory=list)  # "requirer needs requirement; the lock pins version"
    unpinned: dict[str, str] = field(default_factory=dict)  # name -> "version (asked by requirer)" pip takes there
    missing: dict[str, str] = field(default_factory=dict)  # unpinned name -> why it has no wheel there
    patch: dict[str, int] = field(default_factory=dict)  # name -> the first patch release of Python it installs on

    @property
    def minimum(self) -> str:
        """The oldest patch release of the target's Python that every chosen wheel admits (``3.11.5``)."""
        major, minor = self.target.python
        return f"{major}.{minor}.{max(self.patch.values(), default=0)}"

    @property
    def resolves(self) -> bool:
        return not (self.blocks or self.conflicts or self.missing)


def check_target(target: Target, pins: dict[str, Version], extra: list[Requirement], index: Index) -> Result:
    """Everything that stops ``pip install -r requirements.lock -e .`` on ``target`` (see the module docstring)."""
    result, env = Result(target), target.environment()
    chosen: dict[str, tuple[Version, dict]] = {}  # name -> (version, wheel), for pins and unpinned additions
    failed: set[str] = set()
    expanded: set[tuple[str, str]] = set()  # (name, extra) whose requirements are queued
    # (who asks, the requirement, the extra under which the asker's requirements are read)
    queue = [("requirements.lock", Requirement(f"{n}=={v}"), "") for n, v in pins.items()]
    queue += [("pyproject.toml", req, "") for req in extra]
    while queue:
        requirer, req, under = queue.pop(0)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": under}):
            continue
        name = canonicalize_name(req.name)
        if name in failed:
            continue
        if name not in chosen:
            if name in pins:
                wheel, why = wheel_for(index.releases(name), pins[name], target)
                version = pins[name]
                if wheel is None:
                    result.blocks[f"{name}=={version}"] = why
            else:
                version, wheel, why = newest_for(index.releases(name), req.specifier, target)
                if wheel is not None:
                    result.unpinned[name] = f"{version} (for {requirer.split('==')[0]})"
                else:
                    result.missing[name] = why
            if wheel is None:
                failed.add(name)
                continue
            chosen[name] = (version, wheel)
            if oldest_patch(wheel, target):
                result.patch[name] = oldest_patch(wheel, target)
        version, wheel = chosen[name]
        if not req.specifier.contains(version, prereleases=True):
            conflict = f"{requirer} needs {req}; {'the lock pins' if name in pins else 'pip took'} {name}=={version}"
            if conflict not in result.conflicts:
                result.conflicts.append(conflict)
        for wanted in ["", *sorted(req.extras)]:
            if (name, wanted) in expanded:
                continue
            expanded.add((name, wanted))
            for line in index.requires_dist(wheel):
                dep = Requirement(line)
                if wanted and dep.marker is None:
                    continue  # already queued with the plain package
                queue.append((f"{name}=={version}" + (f"[{wanted}]" if wanted else ""), dep, wanted))
    return result


def newest_for(found: Releases, specifier: SpecifierSet, target: Target) -> tuple[Version | None, dict | None, str]:
    """The newest final release inside ``specifier`` that has a wheel for ``target`` (what pip would take)."""
    for version in sorted(specifier.filter(found.wheels), reverse=True):
        wheel, _ = wheel_for(found, version, target)
        if wheel is not None:
            return version, wheel, ""
    return None, None, f"no wheel in {specifier or 'any version'} for this target"


# --------------------------------------------------------------------------------------------------- the table


def cell(result: Result) -> str:
    if result.resolves:
        notes = [f"+{len(result.unpinned)} unpinned"] if result.unpinned else []
        notes += [f"Python {result.minimum} or later"] if result.patch else []
        return "resolves" + (f" ({'; '.join(notes)})" if notes else "")
    what = sorted(result.blocks) + [c.split(";")[0] for c in result.conflicts]
    what += [f"{name} (not pinned)" for name in sorted(result.missing)]
    return "blocked by " + ", ".join(what)


def table(results: list[Result]) -> str:
    header = "| platform | " + " | ".join(f"Python {a}.{b}" for a, b in PYTHONS) + " |"
    rows = [header, "|" + "---|" * (len(PYTHONS) + 1)]
    for plat in platforms():
        cells = [cell(r) for r in results if r.target.platform == plat]
        reason = UNSUPPORTED.get((plat.os, plat.cpu))
        label = plat.name + (" (unsupported)" if reason else "")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def details(results: list[Result]) -> str:
    lines = []
    for result in results:
        notes = [f"- `{pin}`: {why}" for pin, why in sorted(result.blocks.items())]
        notes += [f"- conflict: {text}" for text in result.conflicts]
        notes += [f"- `{name}` (not pinned): {why}" for name, why in sorted(result.missing.items())]
        notes += [f"- `{name}` needs Python {result.target.python[0]}.{result.target.python[1]}.{p} or later"
                  for name, p in sorted(result.patch.items())]
        if result.unpinned:
            listed = ", ".join(f"{n} {v}" for n, v in sorted(result.unpinned.items()))
            notes.append(f"- not pinned by the lock, pip picks: {listed}")
        if notes:
            lines += [f"**{result.target.name}**", ""] + notes + [""]
    reasons = [f"- {os_} {cpu}: {why}" for (os_, cpu), why in UNSUPPORTED.items()]
    return "\n".join(lines + ["Unsupported, and why:", ""] + reasons)


def verdict(results: list[Result]) -> list[str]:
    """Problems that make the check fail: a supported target that does not resolve, or an unsupported one that does."""
    problems = []
    for plat in platforms():
        ours = [r for r in results if r.target.platform == plat]
        if (plat.os, plat.cpu) in UNSUPPORTED:
            if all(r.resolves for r in ours):
                problems.append(f"{plat.name} now resolves on every Python: remove it from UNSUPPORTED")
        else:
            problems += [f"{r.target.name}: {cell(r)}" for r in ours if not r.resolves]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--index-url", default=None, help="a PEP 691 (JSON) simple index; default: pip's")
    parser.add_argument("--write", type=Path, help="also write the table and the details to this Markdown file")
    args = parser.parse_args(argv)

    index = Index(args.index_url or default_index())
    pins = read_lock(args.lock)
    extra = project_requirements(ROOT / "pyproject.toml")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:  # the file lists, in parallel, before the targets
        list(pool.map(index.releases, sorted(pins)))
        results = list(pool.map(lambda t: check_target(t, pins, extra, index), targets()))
    text = table(results)
    print(text)
    print()
    print(details(results))
    problems = verdict(results)
    for problem in problems:
        print(f"FAILS: {problem}", file=sys.stderr)
    if args.write:
        today = datetime.date.today().isoformat()
        args.write.write_text(
            f"# Platforms the lock installs on\n\n"
            f"Made on {today} by `make check-platforms` (`tests/platforms/check_platforms.py`): each pin of "
            f"`{args.lock.name}` and each requirement of `pyproject.toml` looked up on the package index for the "
            f"target's wheel tags and Python version, and the pins' own requirements evaluated with the target's "
            f"environment markers. Nothing installed, no wheel downloaded (metadata files only). Linux means "
            f"glibc {GLIBC[0]}.{GLIBC[1]} or later; macOS means macOS {MACOS[0]} or later. `+N unpinned`: packages "
            f"the lock does not pin that pip adds on that platform (listed below; on Linux the index's torch is the "
            f"CUDA build, hence cuda-*, nvidia-* and triton).\n\n"
            f"{text}\n\n{details(results)}\n"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
