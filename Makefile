# Two commands matter: `make run` (set up, run the pipeline, serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run pipeline serve test lint typecheck pytest bench clean-outputs

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)

run: setup pipeline serve

pipeline: setup
	$(BIN)/census-pipeline ingest
	$(BIN)/census-pipeline validate
	$(BIN)/census-pipeline clean

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/run_all.py
