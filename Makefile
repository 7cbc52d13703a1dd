# Two entry points (see README): `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PROBLEM ?= What is 23 + 48?

.PHONY: run test lint typecheck pytest setup setup-dev clean

# Set up the embedded model and run one search on it (no API key, no server).
run: $(VENV)/.local
	$(VENV)/bin/sal run "$(PROBLEM)"

# Install everything (both integrations, the llama-index 0.12 environment, Chromium) and run all checks.
test: setup-dev lint typecheck pytest

$(VENV)/.local: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e ".[local]"
	touch $@

setup-dev: $(VENV)/.dev

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e ".[server,eval,dev]"
	touch $@

lint: setup-dev
	$(VENV)/bin/ruff check sal_plugins tests benchmarks examples
	$(VENV)/bin/ruff format --check sal_plugins tests benchmarks examples

typecheck: setup-dev
	$(VENV)/bin/mypy sal_plugins

pytest: setup-dev
	$(VENV)/bin/pytest -q tests

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
