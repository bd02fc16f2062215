"""The book on a laptop that is not this Debian machine: the browser test's finder, the platform check, and no
GNU-only shell in what ``make book`` and ``make test`` run.

The finder (``tests/browser/browsers.py``) is run with a ``PATH`` and an environment where no browser exists and
apt-get cannot be used, as on a Mac without Chrome: ``make test-site`` then prints one line saying why the browser
test is skipped and exits 0, unless ``CI=true``, where it fails. Chromium is never uninstalled for this: the
finder only looks where it is told to. The platform check (``tests/platforms/check_platforms.py``) is tested
offline, on file lists shaped like the index's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="fake executables here are shell scripts")


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


browsers = _load("browsers_under_test", ROOT / "tests" / "browser" / "browsers.py")
platforms = _load("check_platforms_under_test", ROOT / "tests" / "platforms" / "check_platforms.py")


def _executable(folder: Path, name: str, prints: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{prints}'\n")
    path.chmod(0o755)
    return path


def _no_manager(browser):
    return "", "", "Selenium Manager found no browser"


# --------------------------------------------------------------------------------------------------- finding a browser


def test_finder_says_why_when_there_is_no_browser(tmp_path):
    found, why = browsers.find(path=str(tmp_path), environ={"PATH": str(tmp_path)}, system="Linux",
                               manager=_no_manager)
    assert found is None
    assert why.startswith("no Chrome or Chromium found") and "Selenium Manager found no browser" in why
    assert "\n" not in why


@posix_only
def test_finder_uses_a_browser_and_its_driver_on_path(tmp_path):
    chromium = _executable(tmp_path, "chromium", "Chromium 150.0.7871.100 built on Debian")
    driver = _executable(tmp_path, "chromedriver", "ChromeDriver 150.0.7871.100 (abc)")
    asked = []
    found, why = browsers.find(path=str(tmp_path), environ={}, system="Linux", manager=lambda b: asked.append(b))
    assert (found.browser, found.driver, why) == (str(chromium), str(driver), "")
    assert asked == [], "Selenium Manager is not asked when the PATH has a matching pair"


@posix_only
def test_finder_asks_selenium_manager_when_the_driver_is_for_another_version(tmp_path):
    chrome = _executable(tmp_path, "google-chrome", "Google Chrome 151.0.1.2")
    _executable(tmp_path, "chromedriver", "ChromeDriver 149.0.1.2 (abc)")
    asked = []

    def manager(browser):
        asked.append(browser)
        return browser, "/cache/chromedriver-151", ""

    found, _ = browsers.find(path=str(tmp_path), environ={}, system="Linux", manager=manager)
    assert asked == [str(chrome)]
    assert (found.browser, found.driver) == (str(chrome), "/cache/chromedriver-151")
    found, why = browsers.find(path=str(tmp_path), environ={}, system="Linux", manager=_no_manager)
    assert found is None and "no chromedriver for it" in why and "another version" in why


def test_finder_looks_in_the_macos_and_windows_app_folders(tmp_path):
    mac = tmp_path / "Applications" / "Google Chrome.app" / "Contents" / "MacOS" / "Google Chrome"
    win = tmp_path / "Google" / "Chrome" / "Application" / "chrome.exe"
    for path in (mac, win):
        path.parent.mkdir(parents=True)
        path.write_text("")
    empty = str(tmp_path / "bin")
    assert browsers.installed_browsers(empty, {"HOME": str(tmp_path)}, "Darwin") == [str(mac)]
    assert browsers.installed_browsers(empty, {"LOCALAPPDATA": str(tmp_path)}, "Windows") == [str(win)]
    assert browsers.installed_browsers(empty, {"HOME": str(tmp_path)}, "Linux") == []


@posix_only
def test_apt_is_used_only_on_debian_and_ubuntu_with_apt_get(tmp_path):
    _executable(tmp_path, "apt-get", "")
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Linux Mint 22"\nID=linuxmint\nID_LIKE="ubuntu debian"\n')
    assert browsers.os_release(release)["ID_LIKE"] == "ubuntu debian"
    path = str(tmp_path)
    assert browsers.apt_packages({"ID": "debian"}, path)[0] == ("chromium", "chromium-driver")
    assert browsers.apt_packages(browsers.os_release(release), path)[0] == ("chromium-browser", "chromium-chromedriver")
    assert browsers.apt_packages({"ID": "fedora", "ID_LIKE": "rhel centos"}, path) == (
        (), "not Debian or Ubuntu, so nothing is installed")
    assert browsers.apt_packages({"ID": "debian"}, str(tmp_path / "nothing"))[1].startswith("apt-get not found")
    assert browsers.os_release(tmp_path / "missing") == {}  # macOS, Windows


def _hidden_site_test(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    """``browsers.py test SITE`` where there is no browser, no apt-get, and a Selenium Manager that cannot fetch."""
    empty = tmp_path / "empty-path"
    empty.mkdir(exist_ok=True)
    site = tmp_path / "html"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text("<html></html>")
    manager = tmp_path / "selenium-manager"  # selenium's own SE_MANAGER_PATH: a manager that is offline
    answer = {"logs": [], "result": {"code": 65, "message": "error sending request (no network)",
                                     "driver_path": "", "browser_path": ""}}
    manager.write_text(f"#!/bin/sh\necho '{json.dumps(answer)}'\nexit 65\n")
    manager.chmod(0o755)
    env = {"PATH": str(empty), "HOME": str(tmp_path), "SE_MANAGER_PATH": str(manager)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, str(ROOT / "tests" / "browser" / "browsers.py"), "test", str(site)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


@posix_only
def test_no_browser_skips_the_browser_test_in_one_line(tmp_path):
    done = _hidden_site_test(tmp_path, ci=None)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 0, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("browser test skipped: no Chrome or Chromium found"), lines
    assert "no network" in lines[0] and "apt-get not found" in lines[0]


@posix_only
def test_no_browser_fails_in_ci(tmp_path):
    done = _hidden_site_test(tmp_path, ci="true")
    assert done.returncode != 0
    assert "browser test FAILED" in done.stdout and "CI=true" in done.stdout


def test_ci_is_read_as_the_ci_services_set_it():
    assert browsers.in_ci({"CI": "true"}) and browsers.in_ci({"CI": "True"}) and browsers.in_ci({"CI": "1"})
    assert not browsers.in_ci({}) and not browsers.in_ci({"CI": "false"}) and not browsers.in_ci({"CI": ""})


# --------------------------------------------------------------------------------------------------- the platform check


def _target(os_name: str, cpu: str, python: tuple[int, int]):
    plat = next(p for p in platforms.platforms() if (p.os, p.cpu) == (os_name, cpu))
    return platforms.Target(plat, python)


def _entry(filename: str, requires_python: str | None = None) -> dict:
    return {"filename": filename, "url": f"https://index.invalid/{filename}", "requires-python": requires_python}


HYPOTHESIS = platforms.releases([
    _entry("hypothesis-6.170.17-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", ">=3.11"),
    _entry("hypothesis-6.170.17-cp312-cp312-macosx_11_0_arm64.whl", ">=3.11"),
    _entry("hypothesis-6.170.17-cp311-abi3-win_amd64.whl", ">=3.11"),
    _entry("hypothesis-6.170.17.tar.gz", ">=3.11"),
])


def test_linux_target_takes_older_manylinux_wheels_beside_torchs_2_28():
    # The "no hypothesis wheel for Linux x86-64 on 3.12" came from one --platform tag (manylinux_2_28):
    # a glibc-2.28 Linux also installs manylinux2014 (= manylinux_2_17) wheels.
    tags = platforms.manylinux_platforms("x86_64", (2, 28))
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux2014_x86_64" in tags and "manylinux1_x86_64" in tags
    assert not any(t.startswith("manylinux_2_29") for t in tags)
    assert "manylinux2010_aarch64" not in platforms.manylinux_platforms("aarch64", (2, 28))
    wheel, why = platforms.wheel_for(HYPOTHESIS, Version("6.170.17"), _target("Linux", "x86-64", (3, 12)))
    assert "manylinux2014_x86_64" in wheel["filename"], why


def test_wheel_choice_follows_the_tags_and_requires_python():
    version = Version("6.170.17")
    assert "abi3-win_amd64" in platforms.wheel_for(HYPOTHESIS, version, _target("Windows", "x86-64", (3, 13)))[0][
        "filename"]  # a cp311-abi3 wheel serves later CPythons
    wheel, why = platforms.wheel_for(HYPOTHESIS, version, _target("macOS", "x86-64", (3, 12)))
    assert wheel is None and why.startswith("no wheel for this platform")
    assert platforms.wheel_for(HYPOTHESIS, Version("1.0"), _target("Linux", "x86-64", (3, 12)))[1] == (
        "no such version on the index")
    newer = platforms.releases([_entry("x-2.0-py3-none-any.whl", ">=3.13")])
    assert platforms.wheel_for(newer, Version("2.0"), _target("Linux", "arm64", (3, 12)))[1] == "requires Python >=3.13"
    assert platforms.wheel_for(newer, Version("2.0"), _target("Linux", "arm64", (3, 13)))[0] is not None
    patch = platforms.releases([_entry("s-4.1-py3-none-any.whl", ">=3.11.5")])
    wheel, _ = platforms.wheel_for(patch, Version("4.1"), _target("Linux", "x86-64", (3, 11)))
    assert wheel is not None and platforms.oldest_patch(wheel, _target("Linux", "x86-64", (3, 11))) == 5


def test_a_targets_tags_are_what_packaging_gives_this_machine_on_the_same_platforms():
    import platform as host

    this = {("Linux", "x86_64"): ("Linux", "x86-64"), ("Linux", "aarch64"): ("Linux", "arm64"),
            ("Darwin", "arm64"): ("macOS", "arm64"), ("Windows", "AMD64"): ("Windows", "x86-64")}
    key = this.get((host.system(), host.machine()))
    if key is None or sys.version_info[:2] not in platforms.PYTHONS or sys.implementation.name != "cpython":
        pytest.skip("this machine is not one of the targets")
    target = _target(*key, sys.version_info[:2])
    shared = set(target.platform.tags) | {"any"}
    here = {t for t in sys_tags() if t.platform in shared and t.interpreter.startswith(("cp", "py"))}
    assert set(target.tags()) == here


class _FakeIndex:
    def __init__(self, files: dict[str, list[str]], requires: dict[str, list[str]]):
        self.files, self.requires = files, requires

    def releases(self, name):
        return platforms.releases([_entry(f) for f in self.files.get(name, [])])

    def requires_dist(self, wheel):
        return self.requires.get(wheel["filename"], [])


def test_markers_are_evaluated_for_the_target_not_for_this_machine():
    index = _FakeIndex(
        files={"app": ["app-1.0-py3-none-any.whl"], "dep": ["dep-1.0-py3-none-any.whl"],
               "colorama": ["colorama-0.4-py3-none-any.whl"], "appnope": ["appnope-1.0-py3-none-any.whl"],
               "cuda": ["cuda-13-py3-none-manylinux_2_28_x86_64.whl"], "extra-dep": ["extra_dep-1-py3-none-any.whl"]},
        requires={"app-1.0-py3-none-any.whl": [
            'colorama; sys_platform == "win32"', 'appnope; platform_system == "Darwin"',
            'cuda; platform_system == "Linux" and platform_machine == "x86_64"', "dep>=2",
            'extra-dep; extra == "fast"']},
    )
    pins = {"app": Version("1.0"), "dep": Version("1.0")}
    windows = platforms.check_target(_target("Windows", "x86-64", (3, 12)), pins, [], index)
    assert set(windows.unpinned) == {"colorama"}
    assert windows.conflicts == ["app==1.0 needs dep>=2; the lock pins dep==1.0"]
    mac = platforms.check_target(_target("macOS", "arm64", (3, 12)), pins, [Requirement("app[fast]")], index)
    assert set(mac.unpinned) == {"appnope", "extra-dep"}
    arm = platforms.check_target(_target("Linux", "arm64", (3, 12)), pins, [], index)
    assert arm.unpinned == {} and not arm.resolves  # the conflict
    linux = platforms.check_target(_target("Linux", "x86-64", (3, 12)),
                                   {"app": Version("1.0"), "dep": Version("2.0")}, [], index)
    assert linux.blocks == {"dep==2.0": "no such version on the index"} and not linux.resolves


def test_the_lock_is_read_as_exact_pins(tmp_path):
    pins = platforms.read_lock(ROOT / "requirements.lock")
    assert pins["torch"] == Version("2.13.0") and "hypothesis" in pins
    loose = tmp_path / "loose.lock"
    loose.write_text("# a comment\nnumpy>=2\n")
    with pytest.raises(ValueError, match="not an exact pin"):
        platforms.read_lock(loose)


def test_the_recorded_table_covers_every_target():
    record = (ROOT / "tests" / "platforms" / "platforms.md").read_text()
    assert re.search(r"Made on \d{4}-\d{2}-\d{2} by `make check-platforms`", record)
    for plat in platforms.platforms():
        assert re.search(rf"^\| {re.escape(plat.name)}( \(unsupported\))? \|", record, re.M), plat.name
    for (os_name, cpu), reason in platforms.UNSUPPORTED.items():
        assert f"{os_name} {cpu} (unsupported)" in record


# --------------------------------------------------------------------------------------------------- shell and paths

GNU_ONLY = {
    r"\bsed\s+(-[a-zA-Z]*\s+)*-i(\s|$)": "sed -i without a suffix (BSD sed needs one: sed -i '' or sed -i.bak)",
    r"\breadlink\s+-f\b": "readlink -f (not on older macOS)",
    r"\bcp\s+--parents\b": "cp --parents (GNU only)",
    r"\bfind\b[^\n]*-printf\b": "find -printf (GNU only)",
    r"\bgrep\s+-[a-zA-Z]*P": "grep -P (BSD grep has no Perl regexes)",
    r"\bdate\s+-d\b": "date -d (GNU only)",
    r"\bsed\s+-r\b": "sed -r (use sed -E)",
    r"\bxargs\s+-r\b": "xargs -r (GNU only)",
    r"\bstat\s+-c\b": "stat -c (GNU only)",
}
SCRIPTS = ["Makefile", ".ci/run", *[str(p.relative_to(ROOT)) for folder in ("tests", "benchmarks")
                                    for p in sorted((ROOT / folder).rglob("*.sh"))]]


def test_make_and_the_scripts_use_no_gnu_only_commands():
    assert any(name.startswith("benchmarks/") for name in SCRIPTS)
    problems = []
    for name in SCRIPTS:
        for number, line in enumerate((ROOT / name).read_text().splitlines(), 1):
            for pattern, why in GNU_ONLY.items():
                if re.search(pattern, line) and not line.lstrip().startswith("#"):
                    problems.append(f"{name}:{number}: {why}")
    assert not problems, "\n".join(problems)


def test_the_gnu_only_patterns_catch_what_they_name():
    for bad in ["sed -i 's/a/b/' f", "readlink -f x", "cp --parents a b", "find . -printf '%p'", "grep -P 'x'",
                "date -d yesterday", "sed -r 's/a/b/'", "xargs -r rm", "stat -c %s f", "grep -oP x"]:
        assert any(re.search(p, bad) for p in GNU_ONLY), bad
    for fine in ["sed -i.bak 's/a/b/' f", "sed -E 's/a/b/'", "grep -E x", "grep Pattern f", "date +%F",
                 "sed 's/-i/x/'"]:
        assert not any(re.search(p, fine) for p in GNU_ONLY), fine


def test_no_two_tracked_files_differ_only_in_case():
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    seen: dict[str, str] = {}
    clashes = []
    for name in listed.splitlines():
        if name.lower() in seen:
            clashes.append(f"{seen[name.lower()]} and {name}")
        seen[name.lower()] = name
    assert not clashes, "these collide on a case-insensitive file system (macOS, Windows): " + "; ".join(clashes)
