# Two commands matter: `make run` (set up, run the pipeline, serve) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

# Every pipeline stage, test subprocess and the server is a fresh Python process. With
# PYTHONDONTWRITEBYTECODE set (common in container images and CI) each one recompiles the
# ~1,400 library modules it imports, about 2 s apiece, because uv (unlike pip) does not
# precompile at install. make lets Python write its bytecode caches (into .venv/ and the
# gitignored __pycache__/ folders) so that cost is paid once.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup run pipeline publish serve test lint typecheck pytest bench constraints

# uv installs the exact versions and hashes recorded in uv.lock (seconds, with a progress bar).
# When uv is not on PATH it is bootstrapped once into .tools/ with pip.
UV_BOOT := .tools/bin/uv
UV ?= $(shell command -v uv 2>/dev/null || echo $(UV_BOOT))

$(UV_BOOT):
	@echo "setup: uv is not on PATH; installing it once into .tools/ with pip"
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --disable-pip-version-check --progress-bar on uv

$(STAMP): pyproject.toml uv.lock | $(UV)
	@echo "setup: installing the locked dev environment into $(VENV)/ (uv.lock, hashes checked)"
	$(UV) sync --frozen --extra dev
	touch $@

setup: $(STAMP)

# Set up, run the pipeline, publish the blessed model to serving/, serve it. A model the gate
# refuses stops here, before publishing: whatever was published before stays served.
run: setup pipeline publish serve

# The whole DVC pipeline (dvc.yaml): reruns only the stages whose code, params or inputs changed;
# fails when the deploy gate does not bless the model. The stages run .venv/bin/census-pipeline.
pipeline: setup
	$(BIN)/dvc repro

# Copy the blessed model, verdict and card from the pipeline's workspace to serving/.
publish: setup
	$(BIN)/census-pipeline publish --params params.yaml

# Serve what serving/ holds (the service refuses an unblessed or tampered model).
serve: setup
	$(BIN)/census-pipeline serve --params params.yaml --host $(HOST) --port $(PORT)

test: setup lint typecheck pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/pytest

bench: setup pipeline
	$(BIN)/python benchmarks/run_all.py

# Regenerate the pip constraints (Heroku, Dockerfile) from uv.lock after `uv lock`.
constraints: | $(UV)
	( echo "# Generated from uv.lock (make constraints): pins for pip installs (Heroku, the container)."; \
	  $(UV) export --frozen --all-extras --no-hashes --no-emit-project --no-header --no-annotate \
	    --format requirements.txt | grep -v '^#' | sort -f ) > requirements/constraints.txt
