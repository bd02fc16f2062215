"""``tests/pdf/tex.py``, where ``make pdf`` gets its TeX: what it finds, and when it may use apt-get.

These run in ``make test`` and need no TeX: they look on a PATH of fake programs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("tex", ROOT / "tests" / "pdf" / "tex.py")
tex = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tex)


def fake_path(tmp_path: Path, programs: dict[str, str]) -> str:
    """A folder of shell scripts named like the programs, each printing its text (and exiting 0)."""
    for name, script in programs.items():
        exe = tmp_path / name
        exe.write_text(f"#!/bin/sh\n{script}\n")
        exe.chmod(0o755)
    return str(tmp_path)


def test_everything_is_missing_on_an_empty_path(tmp_path):
    assert tex.missing(str(tmp_path)) == list(tex.DEBIAN_PACKAGES)


def test_nothing_is_missing_when_every_probe_answers(tmp_path):
    path = fake_path(tmp_path, {
        "latexmk": "", "xelatex": "", "pdftotext": "",
        "kpsewhich": 'echo "/texmf/$1"',
        "fc-list": 'echo "/fonts/$1.otf: $1:style=Regular"',
    })
    assert tex.missing(path) == []


def test_a_missing_latex_package_or_font_is_named(tmp_path):
    path = fake_path(tmp_path, {
        "latexmk": "", "xelatex": "", "pdftotext": "",
        "kpsewhich": '[ "$1" = fncychap.sty ] && exit 1; echo "/texmf/$1"',
        "fc-list": "true",  # fontconfig knows no FreeSerif
    })
    assert tex.missing(path) == ["texlive-latex-extra", "fonts-freefont-otf", "fonts-dejavu-core"]


@pytest.mark.parametrize(
    ("release", "family"),
    [
        ({"ID": "debian"}, "debian"),
        ({"ID": "ubuntu", "ID_LIKE": "debian"}, "ubuntu"),
        ({"ID": "linuxmint", "ID_LIKE": "ubuntu debian"}, "ubuntu"),
        ({"ID": "fedora"}, None),
        ({}, None),  # macOS, Windows: no os-release
    ],
)
def test_apt_get_only_on_debian_and_ubuntu(tmp_path, release, family):
    path = fake_path(tmp_path, {"apt-get": "exit 0"})
    assert tex.apt_family(release, path)[0] == family


def test_no_apt_get_means_no_install(tmp_path):
    family, why = tex.apt_family({"ID": "debian"}, str(tmp_path))
    assert family is None and "apt-get not found" in why


def test_elsewhere_install_says_in_one_line_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(tex, "os_release", lambda: {"ID": "arch"})
    ready, why = tex.install(str(tmp_path))
    assert not ready
    assert "\n" not in why and "latexmk" in why and "not Debian or Ubuntu" in why


def test_ready_means_nothing_is_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(tex, "missing", lambda path=None: [])
    monkeypatch.setattr(tex.subprocess, "run", lambda *a, **k: pytest.fail("nothing should run"))
    assert tex.install(str(tmp_path)) == (True, "")


def test_os_release_reads_quoted_values(tmp_path):
    release = tmp_path / "os-release"
    release.write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n# a comment\nID_LIKE="ubuntu debian"\n'
    )
    assert tex.os_release(release) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian", "ID_LIKE": "ubuntu debian",
    }
    assert tex.os_release(tmp_path / "absent") == {}


def test_the_pdf_test_skips_in_one_line_without_a_pdf(tmp_path):
    path, why, must_fail = tex.pdf_to_test({}, tmp_path)
    assert path is None and not must_fail and "make pdf does" in why and "\n" not in why
    path, why, must_fail = tex.pdf_to_test({"AMBRIDGE_PDF": "absent.pdf"}, tmp_path)
    assert path is None and not must_fail and "could not build it here" in why and "\n" not in why


def test_under_ci_a_missing_pdf_fails_only_when_make_pdf_was_asked_for(tmp_path):
    assert tex.pdf_to_test({"AMBRIDGE_PDF": "absent.pdf", "CI": "true"}, tmp_path)[2] is True
    assert tex.pdf_to_test({"CI": "true"}, tmp_path)[2] is False  # make test: no AMBRIDGE_PDF


def test_a_built_pdf_is_tested(tmp_path):
    (tmp_path / "book.pdf").write_bytes(b"%PDF-1.5")
    assert tex.pdf_to_test({"AMBRIDGE_PDF": "book.pdf", "CI": "true"}, tmp_path) == (tmp_path / "book.pdf", "", False)
