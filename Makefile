# Two commands on a fresh machine: `make scale` (the main job) and `make test`.
# Both create .venv and install lightwork with its dev tools into it the first time.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: scale pi test test-3.14 lint docs docs-browser bytecode cpython-suite

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# An editable install leaves lightwork's bytecode unwritten, and where PYTHONDONTWRITEBYTECODE
# is set (as on this project's machine) every interpreter, worker and fork server would then
# compile lightwork from source: ~20 ms more per start. Write it, as installing a wheel does.
bytecode: $(STAMP)
	$(PYTHON) -m compileall -q src/lightwork

# The main job writes to results/ (untracked: .gitignore), never over the committed reference
# run in docs/ that the docs' scaling lab page shows; it names the files it wrote when it ends.
scale: bytecode
	$(VENV)/bin/lightwork scale pi --plot results/scaling-pi.png --json results/scaling-pi.json

pi: bytecode
	$(VENV)/bin/lightwork pi

lint: bytecode
	$(VENV)/bin/ruff check src tests bench examples docs tools
	$(VENV)/bin/ruff format --check src tests bench examples docs tools
	$(VENV)/bin/mypy

test: lint docs
	$(PYTHON) -m pytest
	tools/py314.sh

# The documentation site, into site/ (untracked). --strict: a broken link, a missing snippet or
# an API name that no longer exists fails the build. About 2 s, so `make test` builds it too.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# The built site in headless Chromium (Debian's `chromium` package): pages render with their
# images, navigation and search (see tools/docs_browser.py).
docs-browser: docs
	$(PYTHON) tools/docs_browser.py

# The suite on Python 3.14 alone (a Debian chroot, cached in ~/.cache/lightwork; see the script).
test-3.14:
	tools/py314.sh

# CPython's own test_concurrent_futures against lightwork.Executor (see tools/cpython_suite.py).
# Fetches Debian's libpython3.X-testsuite once into ~/.cache/lightwork; nothing enters the repo.
cpython-suite: bytecode
	$(PYTHON) tools/cpython_suite.py
