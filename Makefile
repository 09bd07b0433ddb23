# Two commands on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := instance/demo-keys
NODE_STAMP := node_modules/.installed
DEV_SECRET := instance/DEVELOPMENT-ONLY-secret-key
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test setup sysdeps js jstest lint typecheck unit bench lock clean messages

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

# The browser bundles (portal/static/dist/, with SRI hashes in its manifest.json),
# from the npm registry pinned by package-lock.json's integrity hashes.
ifneq ($(wildcard package-lock.json),)
$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund
	touch $@

js: $(NODE_STAMP)
	npm run build
else
js:
	@echo "make: no package-lock.json yet, so no browser bundles: the form works without JavaScript"
endif

# A random secret for this machine only, never for a deployment (instance/ is not committed).
$(DEV_SECRET):
	@mkdir -p instance && chmod 700 instance
	@umask 077 && $(BIN)/python -c 'import secrets; print("development-only-" + secrets.token_urlsafe(48))' > $@.tmp
	@mv $@.tmp $@
	@echo "make: wrote a DEVELOPMENT secret to $@ (set PORTAL_SECRET_KEY to use your own)"

# Serves the source interface on http://127.0.0.1:8080/. Keys: PORTAL_KEYS (or
# PORTAL_KEYS_MANIFEST) when set, else a clearly labelled DEMO key made in instance/.
# Secret: PORTAL_SECRET_KEY when set, else the development secret above.
run: setup js
	@test -n "$$PORTAL_SECRET_KEY" || $(MAKE) --no-print-directory $(DEV_SECRET)
	@if [ -z "$$PORTAL_KEYS$$PORTAL_KEYS_MANIFEST" ]; then \
	    $(BIN)/portal demo-key --dir $(DEMO) && export PORTAL_KEYS=$(DEMO); \
	fi; \
	export PORTAL_SECRET_KEY="$${PORTAL_SECRET_KEY:-$$(cat $(DEV_SECRET))}"; \
	$(BIN)/portal db upgrade && \
	echo "make: open http://$(HOST):$(PORT)/ (Ctrl+C stops the server)" && \
	exec $(BIN)/portal serve source --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check portal tests bench
	$(BIN)/ruff format --check portal tests bench

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest -q

# The browser module against the shared vectors, with node's own test runner.
jstest: js
	npm test --silent

test: setup sysdeps js lint typecheck jstest unit

bench: setup sysdeps js
	$(BIN)/python bench/desk_decrypt.py
	$(BIN)/python bench/browser_crypto.py
	$(BIN)/python bench/page_weight.py
	$(BIN)/python bench/loop.py
	$(BIN)/python bench/upload_memory.py

# Regenerate the hashed locks after changing pyproject.toml.
lock: setup
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements.lock pyproject.toml
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --extra dev -o requirements-dev.lock pyproject.toml

# The message catalogue for translators (messages.pot), from babel.cfg.
messages: setup
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location -o messages.pot .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
