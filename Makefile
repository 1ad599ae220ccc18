# patronload: `make run` for the daily job on the demo warehouse, `make test` for the suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PATRONS ?= 1000000
SNAPSHOT ?=
SNAPSHOT_ARG := $(if $(SNAPSHOT),--snapshot $(SNAPSHOT),)
PROJECT ?=
# Another project keeps its snapshots, builds, zips and history in folders of its own.
PROJECT_NAME := $(notdir $(patsubst %/,%,$(PROJECT)))
PROJECT_ARG := $(if $(PROJECT),--project $(PROJECT),)
PROJECT_ENV := $(if $(PROJECT),PATRONLOAD_SNAPSHOTS=snapshots/$(PROJECT_NAME) \
	PATRONLOAD_BUILD_DIR=build/$(PROJECT_NAME) PATRONLOAD_OUTBOX=outbox/$(PROJECT_NAME) \
	PATRONLOAD_HISTORY=history/$(PROJECT_NAME)/runs.jsonl,)

.DEFAULT_GOAL := help
.PHONY: help install run extract export test lint bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv/ with patronload installed in it

run: $(STAMP) ## Extract, build and export on the demo warehouse into outbox/ (PROJECT=dir)
	$(PROJECT_ENV) $(BIN)/patronload $(PROJECT_ARG) run

extract: $(STAMP) ## Extract the warehouse into a new snapshot
	$(PROJECT_ENV) $(BIN)/patronload $(PROJECT_ARG) extract

export: $(STAMP) ## Build and write zips from the latest snapshot (or SNAPSHOT=path)
	$(PROJECT_ENV) $(BIN)/patronload $(PROJECT_ARG) export $(SNAPSHOT_ARG)

test: $(STAMP) ## Run the test suite
	$(BIN)/pytest -q

bench: $(STAMP) ## Benchmark extract, build, export at PATRONS (default 1,000,000) and 100,000
	$(BIN)/patronload bench --patrons $(PATRONS)

lint: $(STAMP) ## ruff and mypy over the package and tests, patronload lint over queries/
	$(BIN)/ruff check exporter tests
	$(BIN)/mypy exporter
	$(BIN)/patronload lint

clean: ## Remove generated data (snapshots, builds, outbox, demo warehouse, run history)
	rm -rf snapshots build outbox warehouse history
