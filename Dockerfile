# syntax=docker/dockerfile:1
# The prediction service as a container: only the `serve` dependencies plus the blessed model.
# Build after a model was published (CI's artifact, or `make pipeline publish`), so that serving/
# holds a model the gate blessed and the service accepts:  docker build -t census-pipeline .
ARG PYTHON_VERSION=3.11

# --- builder: turn the project and its serve dependencies into wheels -------------------------
FROM python:${PYTHON_VERSION}-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY requirements/constraints.txt requirements/constraints.txt
COPY src ./src
RUN python -m pip wheel --wheel-dir /wheels -c requirements/constraints.txt ".[serve]"

# --- runtime: no compiler, no git, no DVC, no training stack ----------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
# LightGBM's wheel links against the system OpenMP runtime, which the slim image lacks.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8000 \
    WEB_CONCURRENCY=1 \
    CENSUS_API_MODEL_DIR=/app/serving \
    CENSUS_API_MODEL_CARD_PATH=/app/serving/model_card.html
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels "census-pipeline[serve]"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
WORKDIR /app
# The prediction log's default SQLite file (logs/ beside serving/) must be writable by the
# service's user; mount a volume here, or set CENSUS_API_DATABASE_URL to PostgreSQL.
RUN install -d -o app -g app /app/logs
# The published model, its metadata, the gate's verdict and the card with its seal: read-only
# for the service (world-readable whatever mode they were written with).
COPY --chmod=0444 serving/model.txt serving/model.json serving/verdict.json serving/model_card.html serving/model_card.sig.json ./serving/
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]
# Shell form so $PORT (set by Heroku at run time) and $WEB_CONCURRENCY expand, falling back to
# 8000 and 1 when a platform unsets or empties them; exec keeps the server as PID 1 so it
# receives SIGTERM directly. `census-pipeline serve` checks the model before uvicorn starts and
# exits 1 with the reason on a refusal, whatever the worker count.
CMD exec census-pipeline serve --host 0.0.0.0 --port "${PORT:-8000}" --workers "${WEB_CONCURRENCY:-1}"
