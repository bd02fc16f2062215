"""Where the browser test gets its browser, on any platform: ``make test-site`` and ``make browser`` call this.

A Chrome or Chromium already installed is used where it is: on ``PATH`` (``chromium``, ``chromium-browser``,
``google-chrome``, ``google-chrome-stable``, ``chrome``), in macOS's ``/Applications`` (and ``~/Applications``), or
in Windows' ``Program Files`` / ``%LOCALAPPDATA%``. Its driver is a ``chromedriver`` on ``PATH`` of the same major
version; otherwise selenium's own Selenium Manager is asked, which finds browsers in their usual places and, where
the network allows, downloads a matching chromedriver or Chrome for Testing. Only on Debian and Ubuntu (an
``/etc/os-release`` saying so, and ``apt-get`` present), and only when nothing else is found, the distribution's
Chromium and its driver are installed with apt-get.

Where no browser can be had, the browser test is skipped with ONE line saying why, and the exit status is 0 —
except in CI (``CI=true``), where the site must always be checked and a missing browser is a failure.

    python tests/browser/browsers.py find               # what the browser test would use, or why nothing
    python tests/browser/browsers.py install            # Debian/Ubuntu: apt-get install the distribution's Chromium
    python tests/browser/browsers.py test _build/html   # the browser test of the built site (make test-site)

Only the standard library is needed (selenium is imported when Selenium Manager is asked), so ``make browser`` runs
before the virtual environment exists.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
APT_PACKAGES = {"debian": ("chromium", "chromium-driver"), "ubuntu": ("chromium-browser", "chromium-chromedriver")}


@dataclass(frozen=True)
class Browser:
    """A browser binary and the chromedriver that drives it; ``how`` says where they were found."""

    browser: str
    driver: str
    how: str


# --------------------------------------------------------------------------------------------------- looking


def app_paths(system: str, environ: dict) -> list[Path]:
    """Where Chrome and Chromium install themselves outside ``PATH`` on macOS and Windows."""
    if system == "Darwin":
        apps = ["Google Chrome.app/Contents/MacOS/Google Chrome", "Chromium.app/Contents/MacOS/Chromium",
                "Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing"]
        folders = [Path("/Applications")] + ([Path(environ["HOME"]) / "Applications"] if environ.get("HOME") else [])
        return [folder / app for folder in folders for app in apps]
    if system == "Windows":
        roots = [environ[var] for var in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA") if environ.get(var)]
        return [Path(root) / vendor / "Application" / "chrome.exe" for root in roots for vendor in
                ("Google/Chrome", "Chromium")]
    return []


def installed_browsers(path: str | None, environ: dict, system: str) -> list[str]:
    """Chrome/Chromium binaries present, in order of preference: ``PATH`` names first, then the app folders."""
    found = []
    for name in NAMES:
        hit = shutil.which(name, path=path)
        if hit and os.path.realpath(hit) not in {os.path.realpath(f) for f in found}:
            found.append(hit)
    found += [str(p) for p in app_paths(system, environ) if p.is_file()]
    return found


def major_version(binary: str, system: str) -> int | None:
    """The major version a Chrome, Chromium or chromedriver binary reports (None where it cannot be asked:
    ``chrome.exe --version`` opens a window on Windows instead of printing)."""
    if system == "Windows" and not binary.lower().endswith("chromedriver.exe"):
        return None
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)\.\d+\.\d+", out)
    return int(match.group(1)) if match else None


def selenium_manager(browser: str | None) -> tuple[str, str, str]:
    """Ask Selenium Manager for a browser and a matching driver: (browser, driver, "") or ("", "", why not).

    It looks in the browser's usual places and, unless ``SE_OFFLINE=true``, may download chromedriver or Chrome for
    Testing into ``~/.cache/selenium``. No usage statistics are sent.
    """
    try:
        from selenium.webdriver.common.selenium_manager import SeleniumManager
    except ImportError:
        return "", "", "selenium is not installed"
    args = ["--browser", "chrome", "--avoid-stats", "--timeout", "60"]
    if browser:
        args += ["--browser-path", browser]
    if os.environ.get("SE_OFFLINE", "").lower() == "true":
        args.append("--offline")
    said = _Collect()  # the manager's warnings would otherwise print on their own lines
    log = logging.getLogger("selenium.webdriver.common.selenium_manager")
    log.addHandler(said)
    try:
        result = SeleniumManager().binary_paths(args)
    except Exception as err:  # selenium raises WebDriverException, the manager's own message inside
        message = re.search(r"'message': '([^']*)'", str(err))
        return "", "", "Selenium Manager could not get one: " + (message.group(1) if message else _one_line(err))
    finally:
        log.removeHandler(said)
    found_browser, driver = result.get("browser_path") or browser or "", result.get("driver_path") or ""
    if found_browser and driver:
        return found_browser, driver, ""
    missing = "no chromedriver" if found_browser else "no browser"
    return "", "", f"Selenium Manager found {missing}" + (f" ({said.messages[-1]})" if said.messages else "")


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(_one_line(record.getMessage()))


def _one_line(text, limit: int = 160) -> str:
    return " ".join(str(text).split())[:limit]


def find(path: str | None = None, environ: dict | None = None, system: str | None = None,
         manager=selenium_manager) -> tuple[Browser | None, str]:
    """The browser and driver the browser test will use, or None and why none (one clause, no newline).

    ``path``, ``environ`` and ``system`` default to this process's ``PATH``, environment and ``platform.system()``;
    ``manager`` is the Selenium Manager lookup (given a browser path or None).
    """
    environ = dict(os.environ) if environ is None else environ
    path = environ.get("PATH", "") if path is None else path
    system = system or platform.system()
    browsers = installed_browsers(path, environ, system)
    driver = shutil.which("chromedriver", path=path)
    if browsers and driver:
        wanted = major_version(driver, system)
        for browser in browsers:
            if wanted is None or major_version(browser, system) in (wanted, None):
                return Browser(browser, driver, "installed browser, chromedriver on PATH"), ""
    found_browser, found_driver, why = manager(browsers[0] if browsers else None)
    if found_browser and found_driver:
        return Browser(found_browser, found_driver, "driver from Selenium Manager"), ""
    if browsers:
        mismatch = f" (the one on PATH, {driver}, is for another version)" if driver else ""
        return None, f"found {browsers[0]} but no chromedriver for it{mismatch}; {why}"
    return None, f"no Chrome or Chromium found (looked on PATH for {', '.join(NAMES)}" + (
        " and in the usual app folders" if app_paths(system, environ) else "") + f"; {why})"


# --------------------------------------------------------------------------------------------------- installing


def os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """The ``KEY=value`` pairs of an os-release file (empty where there is none: macOS, Windows)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip().strip("\"'") for key, value in pairs}


def apt_packages(release: dict[str, str], path: str | None) -> tuple[tuple[str, ...], str]:
    """The distribution's Chromium packages to install with apt-get, or () and why apt-get is not used here."""
    ids = [release.get("ID", "")] + release.get("ID_LIKE", "").split()
    family = "ubuntu" if "ubuntu" in ids else "debian" if "debian" in ids else None
    if family is None:
        return (), "not Debian or Ubuntu, so nothing is installed"
    if shutil.which("apt-get", path=path) is None:
        return (), "apt-get not found, so nothing is installed"
    return APT_PACKAGES[family], ""


def install(path: str | None = None) -> tuple[bool, str]:
    """On Debian/Ubuntu, apt-get install the distribution's Chromium and driver (with sudo when not root)."""
    packages, why = apt_packages(os_release(), path)
    if not packages:
        return False, why
    sudo = [] if not hasattr(os, "geteuid") or os.geteuid() == 0 else ["sudo"]
    if sudo and shutil.which("sudo", path=path) is None:
        return False, "apt-get needs root and there is no sudo"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        if subprocess.run(sudo + command, env=env).returncode != 0:
            return False, f"`{' '.join(sudo + command)}` failed"
    return True, ""


# --------------------------------------------------------------------------------------------------- the test


def in_ci(environ: dict | None = None) -> bool:
    return (os.environ if environ is None else environ).get("CI", "").strip().lower() in ("true", "1", "yes")


def run_site_test(site: Path) -> int:
    """``make test-site``: the browser test of the built site, or one line saying why it is skipped."""
    if not (site / "index.html").is_file():
        print(f"no site yet at {site}: run make book first")
        return 1
    browser, why = find()
    if browser is None:
        installed, install_why = install()
        browser, why = find() if installed else (None, f"{why}; {install_why}")
    if browser is None:
        if in_ci():
            print(f"browser test FAILED: {why} (CI=true: the site must be checked in CI)")
            return 1
        print(f"browser test skipped: {why}")
        return 0
    env = {**os.environ, "AMBRIDGE_SITE": str(site)}
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "browser"), "-q"]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if argv[:1] == ["find"]:
        browser, why = find()
        print(f"{browser.browser} with {browser.driver} ({browser.how})" if browser else why)
        return 0 if browser else 1
    if argv[:1] == ["install"]:
        installed, why = install()
        if not installed:
            print(f"not installing a browser: {why}")
        return 0 if installed else 1
    if argv[:1] == ["test"] and len(argv) == 2:
        return run_site_test(Path(argv[1]).resolve())
    print(__doc__.split("\n\n")[-2])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
