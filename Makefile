# The README's two commands: `make run` and `make test`. Everything else is set up here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck install schema worker clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "batchgraph needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# API + GraphiQL + one worker; embedded PostgreSQL/Redis unless DATABASE_URL/BROKER_URL are set.
run: install
	$(BIN)/batchgraph serve

worker: install
	$(BIN)/batchgraph worker

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint typecheck
	$(BIN)/pytest

schema: install
	$(BIN)/batchgraph export-schema --output schema.graphql

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
