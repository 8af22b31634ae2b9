# Two commands matter: `make run` (set up, run the pipeline, serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run pipeline serve test lint typecheck pytest bench constraints

# uv installs the exact versions and hashes recorded in uv.lock (seconds, with a progress bar).
# When uv is not on PATH it is bootstrapped once into .tools/ with pip.
UV_BOOT := .tools/bin/uv
UV ?= $(shell command -v uv 2>/dev/null || echo $(UV_BOOT))

$(UV_BOOT):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev
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

# Regenerate the pip constraints (Heroku, Dockerfile) from uv.lock after `uv lock`.
constraints: | $(UV)
	( echo "# Generated from uv.lock (make constraints): pins for pip installs (Heroku, the container)."; \
	  $(UV) export --frozen --all-extras --no-hashes --no-emit-project --no-header --no-annotate \
	    --format requirements.txt | grep -v '^#' | sort -f ) > requirements/constraints.txt
