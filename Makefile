# Two commands matter: `make run` (set up, run the pipeline, serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run pipeline serve test lint typecheck pytest bench

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]'
	touch $@

setup: $(STAMP)

run: setup pipeline serve

# The whole DVC pipeline (dvc.yaml): reruns only the stages whose code, params or inputs changed;
# fails when the deploy gate does not bless the model. DVC runs each stage's command through the
# shell, so the virtual environment's console scripts go first on PATH.
pipeline: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# Serve the blessed model from models/ (the service refuses an unblessed or tampered one).
serve: setup
	$(BIN)/census-pipeline serve --host $(HOST) --port $(PORT)

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/run_all.py
