# Every target creates or refreshes its own virtual environment, so each works from a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-timescaledb lint bench deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

deps: $(STAMP)
	@bash scripts/ensure-mosquitto.sh
	@bash scripts/ensure-chromium.sh

demo: deps
	$(BIN)/carbonflow demo

test: deps
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
