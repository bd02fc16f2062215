"""Ready to publish: the repository's address is one setting, the Pages workflow builds with the README's command,
Binder gets a light CPU environment, and a Colab set-up cell (where a chapter has one) uses the setting.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
URL = CONFIG["repository"]["url"]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
LOCK = dict(
    line.split("==", 1) for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line
)

sys.path.insert(0, str(ROOT / "book" / "_ext"))
import repository_url  # noqa: E402


def _readme_command(name: str) -> str:
    """The command of the README's set-up block that starts with ``make NAME`` (its comment stripped)."""
    block = re.search(r"## Set-up.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.startswith(f"make {name}")]
    assert len(commands) == 1, f"the README's set-up block has no single `make {name}` line"
    return commands[0]


def _recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target, as written."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.M)
    assert match, f"no target {target} in the Makefile"
    return [line.strip() for line in match.group(1).splitlines()]


# ----------------------------------------------------------------------------------- the repository's address


def test_the_address_is_set_once():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", URL), "Sphinx needs a GitHub/GitLab/Bitbucket URL"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    holders = []
    for name in tracked:
        path = ROOT / name
        if path.is_file() and path.suffix in {".md", ".yml", ".yaml", ".py", ".txt", ".toml", ".cfg", ""}:
            if URL in path.read_text(errors="ignore") and not name.startswith("chapters/"):
                holders.append(name)
    assert holders == ["_config.yml"], f"the address is written out in {holders}: use {{{{ repository_url }}}}"


def test_pages_that_show_the_address_read_the_setting():
    running = (ROOT / "book" / "course" / "running.md").read_text()
    assert running.count(repository_url.PLACEHOLDER) == 2  # the clone for a laptop, the clone on Colab
    assert CONFIG["sphinx"]["local_extensions"]["repository_url"] == "book/_ext"
    app = SimpleNamespace(config=SimpleNamespace(html_theme_options={"repository_url": URL + "/"}))
    source = [running]
    repository_url.substitute(app, "book/course/running", source)
    assert repository_url.PLACEHOLDER not in source[0]
    assert f"git clone {URL} ambridge-book" in source[0] and f'"{URL}", "ambridge-book"' in source[0]
    app.config.html_theme_options = {}
    with pytest.raises(ValueError, match="sets no repository.url"):
        repository_url.substitute(app, "book/course/running", [running])


@pytest.mark.parametrize("md", sorted((ROOT / "chapters").glob("[0-9][0-9]_*.md")), ids=lambda p: p.stem)
def test_a_colab_set_up_cell_comes_first_and_uses_the_setting(md):
    """A notebook opened on Colab cannot read _config.yml, so a chapter's set-up cell carries the address itself."""
    code = [cell.source for cell in jupytext.read(md).cells if cell.cell_type == "code"]
    for index, source in enumerate(code):
        if "git" in source and "clone" in source:
            assert index == 0, f"{md.name}: the Colab set-up cell must be the first code cell"
            assert f'"{URL}"' in source, f"{md.name}: the set-up cell must clone {URL}"
            assert 'find_spec("ambridge") is None' in source, f"{md.name}: install only when the library is missing"


# ----------------------------------------------------------------------------------- the Pages workflow


def test_the_workflow_builds_with_the_readmes_command_and_publishes_to_pages():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert CONFIG["repository"]["branch"] in triggers["push"]["branches"]
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    steps = workflow["jobs"]["build"]["steps"]
    runs = [step.get("run", "").strip() for step in steps]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    build = runs.index(_readme_command("book"))  # the README's build command, character for character
    assert runs.index(".ci/run") < build, "the site is published only after make test"
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(_readme_command("test"))
    upload = uses.index("actions/upload-pages-artifact")
    assert upload > build and steps[upload]["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]
    python = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11"


def test_the_readmes_build_is_the_strict_build_that_make_test_runs():
    """`make book` (the workflow, the README) and `make book-strict` (the end of `make test`) are one command, the
    strict one adding only --all (no cache)."""
    (book,) = _recipe("book")[:1]
    (strict,) = _recipe("book-strict")
    assert strict.replace(" --all", "") == book
    assert "$(MAKE) --no-print-directory book-strict" in _recipe("test")


# ----------------------------------------------------------------------------------- Binder


def test_binder_is_light_cpu_and_pinned_as_the_lock():
    lines = [line for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "--extra-index-url https://download.pytorch.org/whl/cpu"
    pins = dict(line.split("==", 1) for line in lines[1:])
    assert pins.pop("torch") == LOCK["torch"] + "+cpu"
    assert {name: LOCK.get(name) for name in pins} == pins, "binder/requirements.txt drifted from requirements.lock"
    project = (ROOT / "pyproject.toml").read_text()
    needed = re.findall(r'^\s*"([A-Za-z][\w-]*)[<>=]', project.split("[project.optional-dependencies]")[0], re.M)
    missing = [n for n in needed if n.lower() not in {p.lower() for p in pins} | {"torch"}]
    assert missing == [], f"the library needs {missing}, which Binder would not install"
    assert "jupyter-book" not in pins and "otter-grader" not in pins  # light: no build or grading stack
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    assert "pip install --no-cache-dir --no-deps -e ." in post.read_text()
    assert "-r requirements-nodeps.lock" in post.read_text()
