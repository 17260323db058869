# Every target creates or refreshes its own virtual environment, so each works from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-reset test test-timescaledb lint bench deps test-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# What the demo needs: the package and a broker (mosquitto; as a non-root user it is unpacked
# under .cache, and without it the demo falls back to a pure-Python broker).
deps: $(STAMP)
	@bash scripts/ensure-mosquitto.sh || echo "note: no mosquitto; the demo uses its pure-Python broker" >&2

# What only the tests need on top: Chromium and a Chinese font for the live-view browser test
# (installed only when root, never fatal: without them that one test skips).
test-deps: deps
	@bash scripts/ensure-chromium.sh

demo: deps
	$(BIN)/carbonflow demo

# Start over: a new database, new ports and a new admin key.
demo-reset: deps
	$(BIN)/carbonflow demo --reset

test: test-deps
	$(BIN)/pytest -q -p no:cacheprovider

# The suite on a real TimescaleDB built by the kit (scripts/test-timescaledb.sh); a no-op
# without the kit. PYTEST_ARGS narrows it, e.g. PYTEST_ARGS=tests/storage.
test-timescaledb: deps
	VENV=$(VENV) bash scripts/test-timescaledb.sh $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy carbonflow services simulators cli tests bench
	$(BIN)/lint-imports

bench: deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .cache build *.egg-info
