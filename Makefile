# moerge: `make demo` runs the main job, `make test` runs the tests. Both install into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.stamp-runtime
STAMP_DEV := $(VENV)/.stamp-dev
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# CI=true also runs the slower suites.
PYTEST_ARGS ?= $(if $(filter true,$(CI)),,-m "not slow")

.PHONY: help demo test lint format protos check-protos migration clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(STAMP_RUN)

demo: $(STAMP_RUN) ## install, then run the main job on the embedded default coordinator
	$(BIN)/moerge demo

test: $(STAMP_DEV) ## install dev extras, then run the tests (CI=true adds the slow suites)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP_DEV) ## ruff, mypy and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy moerge coordinator contributor
	$(BIN)/lint-imports

format: $(STAMP_DEV) ## format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

protos: $(STAMP_DEV) ## regenerate moerge/_proto from protos/
	$(BIN)/python protos/generate.py

check-protos: $(STAMP_DEV) ## fail when moerge/_proto is stale
	$(BIN)/python protos/generate.py --check

migration: $(STAMP_DEV) ## autogenerate a migration: make migration m="what changed"
	@test -n "$(m)" || (echo 'usage: make migration m="what changed"' && exit 2)
	$(BIN)/python -c 'from coordinator.registry.migrate import revision; revision("$(m)")'

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
