# Two commands on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := instance/demo-keys

.PHONY: run test setup sysdeps lint typecheck unit bench lock clean

setup: $(STAMP)

# The lock carries a hash for every wheel; pip refuses anything else.
$(STAMP): requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# System packages the test suites need (installed when root on Debian, else the exact command).
sysdeps:
	scripts/sysdeps.sh

run: setup
	$(BIN)/portal demo-key --dir $(DEMO)
	PORTAL_KEYS_MANIFEST=$(DEMO)/manifest.json $(BIN)/portal serve

lint: setup
	$(BIN)/ruff check portal tests bench
	$(BIN)/ruff format --check portal tests bench

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest -q

test: setup sysdeps lint typecheck unit

bench: setup
	$(BIN)/python bench/desk_decrypt.py

# Regenerate the hashed locks after changing pyproject.toml.
lock: setup
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements.lock pyproject.toml
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --extra dev -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
