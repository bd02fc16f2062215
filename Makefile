# The two commands that set everything up on a fresh machine are `make book` and `make test`.
# Both create .venv from requirements.lock when it is missing or out of date.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHAPTER ?=
ARGS ?=
GRID ?=
PORT ?= 8000
SUBMISSIONS ?=
LAB_ARGS ?=

.PHONY: help venv book book-strict pdf serve test test-gpu test-site browser check-platforms execute run sweep bench mutants lock clean assignments grade lab

help:
	@echo "make book                 build the HTML site from the committed executed notebooks"
	@echo "make pdf                  the book as one PDF (_build/latex/book.pdf; installs TeX on Debian/Ubuntu), then"
	@echo "                          the site again, which serves it (_static/ambridge-book.pdf); the PDF test last"
	@echo "make serve                serve the built site on http://localhost:$(PORT)"
	@echo "make test                 library tests, pairing test, runner tests, nbval on every chapter, strict build,"
	@echo "                          then the browser test of the built site (make test-site)"
	@echo "make test-gpu             what only a GPU can check (on a machine with CUDA; skips elsewhere)"
	@echo "make test-site            the built site in headless Chrome/Chromium; screenshots in _build/screenshots/"
	@echo "make check-platforms      which OS/CPU/Python combinations requirements.lock installs on (network; not in make test)"
	@echo "make run CHAPTER=01 ARGS='-p beta 8'   rerun a chapter with new parameters into runs/"
	@echo "make execute [CHAPTER=01] re-execute chapters in place after editing their .md source"
	@echo "make sweep CHAPTER=01 GRID=chapters/sweeps/01_energy_is_nll.yaml   run a chapter over a parameter grid (Dask)"
	@echo "make lab                  JupyterLab on the chapters (each .md paired with its .ipynb by jupytext)"
	@echo "make assignments          the problem sets as otter-grader assignments: student and autograder versions"
	@echo "make grade SUBMISSIONS=dir   grade a folder of submitted assignment notebooks into a table (no Docker)"
	@echo "make bench                run the benchmarks in benchmarks/"
	@echo "make mutants              mutation testing of the core and the runner/sweep machinery (slow; not in make test)"

$(STAMP): requirements.lock requirements-nodeps.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "The book is at $(CURDIR)/_build/html/index.html  (view it with: make serve)"

# A from-scratch build, so a warning hidden by Sphinx's cache cannot slip through.
book-strict: $(STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --keep-going

# The book as one PDF, with Jupyter Book's LaTeX builder (XeLaTeX; _config.yml, latex). tests/pdf/tex.py finds TeX or,
# on Debian/Ubuntu only, installs the distribution's packages (apt-get), as `make browser` does for Chromium;
# elsewhere it says in one line what is missing and nothing is built. Then the HTML site is built again, which serves
# the PDF as _static/ambridge-book.pdf and links it from the introduction (book/_ext/book_pdf.py), and
# tests/test_pdf.py reads the PDF (skipped when none was built; a failure when CI=true). Not part of make test.
PDF := _build/latex/book.pdf
pdf: $(STAMP)
	@rm -f $(PDF)
	@if $(PY) tests/pdf/tex.py install; then \
		$(VENV)/bin/jupyter-book build . --builder pdflatex --warningiserror --keep-going && \
		$(MAKE) --no-print-directory book; \
	fi
	AMBRIDGE_PDF=$(PDF) $(PY) -m pytest tests/test_pdf.py -q -rs
	@test ! -f $(PDF) || echo "The PDF is at $(CURDIR)/$(PDF)"

serve:
	@test -f _build/html/index.html || { echo "no site yet: run make book first"; exit 1; }
	$(PY) -m http.server $(PORT) --directory _build/html

# The committed notebooks were executed on a CPU: under test every chapter's device="auto" must take its CPU path
# too, even on a machine with a GPU, so the GPU is hidden from the tests here (one place; make test-gpu is for it).
# One pytest worker per core (pytest-xdist), each taking whole files (a notebook's cells run in order in one kernel):
# most tests and chapters run on one thread, so on the 2-core CI machine this took the tests from 1040 s to 743 s.
test: $(STAMP)
	CUDA_VISIBLE_DEVICES= $(PY) -m pytest tests chapters -n auto --dist loadfile --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout=900
	$(MAKE) --no-print-directory book-strict
	$(MAKE) --no-print-directory test-site

# What only a GPU can check (tests/gpu: fused attention kernels, half precision, the bf16 in-context step, every
# chapter's CUDA path on its quick preset). Run it on a machine with CUDA; without one every test skips.
test-gpu: $(STAMP)
	$(PY) -m pytest tests/gpu -v -rs

# The built site in a real browser (tests/browser): headless Chrome or Chromium loads every page from a local server.
# tests/browser/browsers.py finds the browser (PATH, the usual app folders, Selenium Manager; on Debian/Ubuntu it
# installs the distribution's Chromium when none is found) or says in one line why the test is skipped (exit 0;
# a failure when CI=true). Run after a build; screenshots of every page, light and dark, go to _build/screenshots/.
test-site: $(STAMP)
	$(PY) tests/browser/browsers.py test _build/html

# Debian's (or Ubuntu's) Chromium and its matching driver, from the distribution's package registry.
browser:
	$(PYTHON) tests/browser/browsers.py install

# Resolves requirements.lock for Linux, macOS and Windows on Python 3.11-3.13 without installing anything; prints the
# table and records it in tests/platforms/platforms.md.
check-platforms: $(STAMP)
	$(PY) tests/platforms/check_platforms.py --write tests/platforms/platforms.md

execute: $(STAMP)
	$(PY) -m ambridge.execute $(CHAPTER)

run: $(STAMP)
	@test -n "$(CHAPTER)" || { echo "usage: make run CHAPTER=01 ARGS='-p name value'"; exit 2; }
	$(PY) -m ambridge.run $(CHAPTER) $(ARGS)

# JupyterLab (pinned in requirements.lock) on the chapters. jupytext's server and lab extensions come with jupytext:
# opening or saving a chapter's .md or .ipynb updates its twin (jupytext.toml). The extension manager is read-only
# (it would query the package index); as root, Jupyter needs --allow-root. LAB_ARGS adds options (port, token, ...).
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=chapters --LabApp.extension_manager=readonly $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The problem sets as otter-grader assignments (assignments/*.md; book/course/assignments.md): the student and
# autograder versions under _build/assignments/, and grading of a folder of submissions without Docker.
assignments: $(STAMP)
	$(PY) -m ambridge.book.assignments release

grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder-of-notebooks (after make assignments)"; exit 2; }
	$(PY) -m ambridge.book.assignments grade $(SUBMISSIONS)

sweep: $(STAMP)
	@test -n "$(CHAPTER)" -a -n "$(GRID)" || { echo "usage: make sweep CHAPTER=01 GRID=chapters/sweeps/01_energy_is_nll.yaml [ARGS='--workers 4']"; exit 2; }
	$(PY) -m ambridge.sweep $(CHAPTER) $(GRID) $(ARGS)

bench: $(STAMP)
	$(PY) benchmarks/retrieval.py
	$(PY) benchmarks/capacity.py

# Mutation testing (mutmut): plants one bug at a time in the files [tool.mutmut] lists and runs the covering tests.
mutants: $(STAMP)
	$(PY) tests/mutation/run_mutants.py

lock: $(STAMP)
	$(PY) -m pip freeze --all --exclude-editable | grep -v "^pip==" | grep -v -x -F -f <(sed -n 's/ *#.*//; /./p' requirements-nodeps.lock) | sed 's/^torch==\(.*\)+cpu/torch==\1/' > requirements.lock.new
	@echo "wrote requirements.lock.new; review it and move it over requirements.lock"

clean:
	rm -rf _build runs
