# Two entry points (see README): `make run` and `make test`. Everything else is a step of those.
PYTHON ?= python3
VENV ?= .venv
LEGACY_VENV ?= .venv-li012
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
BIN := $(abspath $(VENV))/bin
PROBLEM ?= What is 23 + 48?
PYTEST_ARGS ?= -q -p no:cacheprovider

.PHONY: run test setup setup-dev setup-legacy chromium sandbox lint typecheck pytest clean

# Set up the embedded model and run one search on it (no API key, no server), the greedy answer
# beside the searched one.
run: $(VENV)/.local
	$(VENV)/bin/sal run "$(PROBLEM)" --compare

# Install everything (both integrations, the llama-index 0.12 environment, Chromium) and run all checks.
test: setup-dev setup-legacy chromium sandbox lint typecheck pytest

# Not quiet: the llama-cpp-python build takes minutes, and pip's lines show it is progressing.
$(VENV)/.local: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "Installing sal-plugins with the embedded model. This compiles llama-cpp-python from source:"
	@echo "about 5 minutes on 2 cores, once (later runs reuse $(VENV))."
	$(PY) -m pip --disable-pip-version-check install -e ".[local]"
	touch $@

setup-dev: $(VENV)/.dev

# One resolver run for the core and both integrations, so their pins agree.
$(VENV)/.dev: pyproject.toml integrations/langchain/pyproject.toml integrations/llama_index/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -e ".[server,eval,serve,mcts,ray,dev]" -e "integrations/langchain[test]" -e "integrations/llama_index[test]"
	touch $@ $(VENV)/.local

setup-legacy: $(LEGACY_VENV)/.dev

# llama-index-core 0.12 (the last release with QueryPipeline) for as_query_component().
$(LEGACY_VENV)/.dev: pyproject.toml integrations/llama_index/pyproject.toml
	$(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/python -m pip --disable-pip-version-check -q install -e . -e "integrations/llama_index[test-legacy]"
	touch $@

# Headless Chromium for the tree-page test (Debian's package; needs root, as on CI).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Bubblewrap, the sandbox CodeTestVerifier runs candidate programs in (Debian's package; needs root,
# as on CI). Without it the verifier falls back to weaker modes, and their tests say which.
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }

lint: setup-dev
	$(BIN)/lint-imports
	$(BIN)/ruff check sal_plugins tests benchmarks examples
	$(BIN)/ruff format --check sal_plugins tests benchmarks examples
	cd integrations/langchain && $(BIN)/ruff check . && $(BIN)/ruff format --check .
	cd integrations/llama_index && $(BIN)/ruff check . && $(BIN)/ruff format --check .

typecheck: setup-dev
	$(BIN)/mypy sal_plugins
	cd integrations/langchain && $(BIN)/mypy
	cd integrations/llama_index && $(BIN)/mypy

# Each package's suite runs in its own pytest session (each has a `tests` folder); the core last.
pytest: setup-dev setup-legacy
	cd integrations/llama_index && $(abspath $(LEGACY_VENV))/bin/pytest $(PYTEST_ARGS) tests/legacy_0_12
	cd integrations/llama_index && $(BIN)/pytest $(PYTEST_ARGS) tests/unit_tests tests/integration_tests
	cd integrations/langchain && $(BIN)/pytest $(PYTEST_ARGS) tests
	$(BIN)/pytest $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) $(LEGACY_VENV) .mypy_cache .ruff_cache .pytest_cache
