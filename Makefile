# Two commands on a fresh machine: `make scale` (the main job) and `make test`.
# Both create .venv and install lightwork with its dev tools into it the first time.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: scale pi test lint

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

scale: $(STAMP)
	$(VENV)/bin/lightwork scale pi --plot docs/scaling-pi.png --json docs/scaling-pi.json

pi: $(STAMP)
	$(VENV)/bin/lightwork pi

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples docs
	$(VENV)/bin/ruff format --check src tests bench examples docs
	$(VENV)/bin/mypy

test: lint
	$(PYTHON) -m pytest
