"""Where ``make pdf`` gets its TeX: the XeLaTeX that Jupyter Book's LaTeX builder runs, through latexmk.

A TeX installation already there is used as it is (TeX Live, MacTeX, MiKTeX: ``xelatex`` and ``latexmk`` on
``PATH``, and the LaTeX packages and fonts listed below findable). Only on Debian and Ubuntu (an
``/etc/os-release`` saying so, and ``apt-get`` present), and only when something is missing, the distribution's
TeX packages are installed with apt-get — the smallest set that builds this book (``DEBIAN_PACKAGES``: with their
dependencies 28 packages, about 350 MB installed on Debian 12, 3½ minutes on a shared 2-core machine). Elsewhere
one line says what is missing and how to get it, and the exit status is 1: ``make pdf`` then builds nothing, and
its PDF test is skipped (a failure when ``CI=true``).

    python tests/pdf/tex.py check      # what is missing for the PDF, or "ready"
    python tests/pdf/tex.py install    # Debian/Ubuntu: apt-get install what is missing

Only the standard library is needed, so this runs before the virtual environment exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "browser"))
from browsers import os_release  # noqa: E402  (one reader of /etc/os-release for both installers)

# The Debian/Ubuntu packages (same names on both) and, for each, one file the build reads from it: found means
# the package (or another TeX distribution's equivalent) is there.
DEBIAN_PACKAGES = {
    "latexmk": "latexmk",  # a program on PATH
    "texlive-xetex": "xelatex",  # a program on PATH
    "texlive-latex-recommended": "polyglossia.sty",  # XeLaTeX's languages (also fontspec, fancyvrb, ...)
    "texlive-latex-extra": "fncychap.sty",  # Sphinx's chapter headings (also tabulary, changepage, pgfplots' tikz)
    "texlive-fonts-recommended": "rsfs10.tfm",  # the script font of mathrsfs, which jupyterBook.cls loads
    "fonts-freefont-otf": "FreeSerif",  # Sphinx's XeLaTeX text fonts: FreeSerif, FreeSans
    "fonts-dejavu-core": "DejaVu Sans Mono",  # the code font (_config.yml, latex_elements)
    "poppler-utils": "pdftotext",  # not TeX: the PDF test reads the PDF's text and images with it
}
PROGRAMS = ("latexmk", "xelatex", "pdftotext")
FONTS = ("FreeSerif", "DejaVu Sans Mono")
PDF_ENV = "AMBRIDGE_PDF"
HOW_ELSEWHERE = "install TeX Live (macOS: MacTeX; Windows: TeX Live or MiKTeX) and GNU FreeFont"




def _has_file(name: str, path: str | None) -> bool:
    """A LaTeX package file kpsewhich finds, or a font fontconfig knows (XeTeX finds fonts through fontconfig)."""
    if name in PROGRAMS:
        return shutil.which(name, path=path) is not None
    if name in FONTS:
        fc_list = shutil.which("fc-list", path=path)
        if fc_list is None:
            return False
        return bool(subprocess.run([fc_list, name], capture_output=True, text=True).stdout.strip())
    kpsewhich = shutil.which("kpsewhich", path=path)
    if kpsewhich is None:
        return False
    return subprocess.run([kpsewhich, name], capture_output=True, text=True).returncode == 0


def missing(path: str | None = None) -> list[str]:
    """The Debian package names of what the PDF build lacks here (empty: ready)."""
    return [package for package, probe in DEBIAN_PACKAGES.items() if not _has_file(probe, path)]


def apt_family(release: dict[str, str], path: str | None) -> tuple[str | None, str]:
    """``"debian"`` or ``"ubuntu"`` where apt-get may install the packages, else None and why not."""
    ids = [release.get("ID", "")] + release.get("ID_LIKE", "").split()
    family = "ubuntu" if "ubuntu" in ids else "debian" if "debian" in ids else None
    if family is None:
        return None, "not Debian or Ubuntu, so nothing is installed"
    if shutil.which("apt-get", path=path) is None:
        return None, "apt-get not found, so nothing is installed"
    return family, ""


def install(path: str | None = None) -> tuple[bool, str]:
    """Install what is missing (Debian/Ubuntu, apt-get, with sudo when not root); True when TeX is ready after."""
    lacking = missing(path)
    if not lacking:
        return True, ""
    family, why = apt_family(os_release(), path)
    if family is None:
        return False, f"TeX for the PDF is missing ({', '.join(lacking)}): {why}; {HOW_ELSEWHERE}"
    sudo = [] if not hasattr(os, "geteuid") or os.geteuid() == 0 else ["sudo"]
    if sudo and shutil.which("sudo", path=path) is None:
        return False, f"TeX for the PDF is missing ({', '.join(lacking)}) and apt-get needs root, but there is no sudo"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing TeX for the PDF with apt-get: {' '.join(lacking)}", flush=True)
    install_cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *lacking]
    for command in (["apt-get", "update", "-qq"], install_cmd):
        if subprocess.run(sudo + command, env=env).returncode != 0:
            return False, f"`{' '.join(sudo + command)}` failed"
    still = missing(path)
    return (not still), (f"still missing after apt-get: {', '.join(still)}" if still else "")


def in_ci(environ) -> bool:
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pdf_to_test(environ, root: Path) -> tuple[Path | None, str, bool]:
    """For tests/test_pdf.py: the PDF that ``AMBRIDGE_PDF`` names (``make pdf`` sets it), or None, one line saying
    why not, and whether that is a failure (``make pdf`` was asked for under ``CI=true`` and built nothing)."""
    named = environ.get(PDF_ENV)
    if not named:
        return None, f"set {PDF_ENV} to the built PDF (make pdf does)", False
    path = (root / named).resolve()
    if not path.is_file():
        return None, f"no PDF at {named}: make pdf could not build it here (its first line says why)", in_ci(environ)
    return path, "", False


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        lacking = missing()
        print(f"missing for the PDF: {' '.join(lacking)}" if lacking else "ready: TeX for the PDF is installed")
        return 1 if lacking else 0
    if argv[:1] == ["install"]:
        ready, why = install()
        if not ready:
            print(f"not building the PDF: {why}")
        return 0 if ready else 1
    print(__doc__.split("\n\n")[-2])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
