"""Working locally, as ``book/course/running.md`` says: ``make lab`` and ``make run``'s HTML copy.

``make lab`` is started headless on 127.0.0.1 with a random port and a token, exactly as documented plus those
options (``LAB_ARGS``); a chapter is fetched through Jupyter's contents API, paired with its twin by jupytext's
server extension; then the server is stopped, all within a bounded time.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import jupytext
import nbformat
import pytest

from ambridge.book.run import html_copy

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_energy_is_nll"
START_TIMEOUT_S = 180  # a cold JupyterLab start on two busy cores
STOP_TIMEOUT_S = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""
    except OSError:  # not listening (yet)
        return 0, b""


def test_the_course_page_documents_make_lab():
    running = (ROOT / "book" / "course" / "running.md").read_text()
    assert "make lab" in running
    assert "lab: $(STAMP)" in (ROOT / "Makefile").read_text()


@pytest.fixture
def lab():
    """``make lab`` on a random loopback port with a random token; yields (base URL, token); stops it after."""
    port, token = _free_port(), secrets.token_hex(16)
    options = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token={token}"
    # -o: never reinstall the environment from inside a test (make test has just made sure it is current)
    command = ["make", "-s", "-o", ".venv/.installed", "lab", f"LAB_ARGS={options}"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(f"{base}/api/status?token={token}")[0] != 200:
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, f"JupyterLab did not answer within {START_TIMEOUT_S} s"
            time.sleep(1)
        yield base, token
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=STOP_TIMEOUT_S)
            pytest.fail(f"JupyterLab did not stop within {STOP_TIMEOUT_S} s of SIGTERM")
    with pytest.raises(OSError):  # nothing listens there any more
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_make_lab_serves_the_chapters_paired_by_jupytext(lab):
    base, token = lab
    status, body = _get(f"{base}/api/contents/{CHAPTER}.md?type=notebook&content=1&token={token}")
    assert status == 200
    model = json.loads(body)
    source = jupytext.read(ROOT / "chapters" / f"{CHAPTER}.md")
    assert model["type"] == "notebook"
    assert [c["source"] for c in model["content"]["cells"]] == [c.source for c in source.cells]
    assert model["content"]["metadata"]["jupytext"]["formats"] == "md:myst,ipynb"  # jupytext.toml pairs it
    outputs = sum(len(c.get("outputs", [])) for c in model["content"]["cells"])
    assert outputs > 0, "the .md opened without the outputs of its paired .ipynb"

    page = _get(f"{base}/lab?token={token}")[1].decode()
    assert "jupyterlab-jupytext" in page, "jupytext's JupyterLab extension is not active"
    assert _get(f"{base}/api/contents/{CHAPTER}.md?type=notebook")[0] == 403  # the token is required


def test_make_run_html_copy_shows_text_and_figures(tmp_path):
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('capacity 0.138')")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="capacity 0.138\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
    ]
    notebook.cells = [nbformat.v4.new_markdown_cell("# A rerun"), cell]
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)
    html = html_copy(path)
    assert html == tmp_path / "run.html"
    text = html.read_text()
    assert "capacity 0.138" in text and "A rerun" in text and "data:image/png;base64,iVBORw0KGgo=" in text
