"""The app factory, run by `census-pipeline serve` (or `uvicorn ...main:create_app --factory`).

Nothing happens at import. `create_app` reads the settings, wires routers, guards and error
handlers; the lifespan loads the model once, before the server accepts a connection, and refuses to
start when the model is missing, tampered with or not blessed. `serve` runs the same checks before
uvicorn starts, so a refusal exits 1 whatever the worker count (docs/api.md).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from census_pipeline import __version__
from census_pipeline.api import docs_pages, handlers, logs
from census_pipeline.api.deps import require_api_key
from census_pipeline.api.lifecycle import drain_on_sigterm, explain_pool
from census_pipeline.api.loading import ServedModel, load_served_model
from census_pipeline.api.middleware import BodyLimits, RequestGuard
from census_pipeline.api.oip import routes as oip
from census_pipeline.api.routes import (
    bench,
    feedback,
    health,
    metrics,
    model,
    monitoring,
    predict,
    root,
)
from census_pipeline.api.schemas import CensusRecord, FeedbackItem
from census_pipeline.api.settings import Settings
from census_pipeline.api.telemetry import RequestMetrics, Telemetry
from census_pipeline.api.tracking import Tracker
from census_pipeline.errors import PipelineError
from census_pipeline.predlog.database import make_engine
from census_pipeline.predlog.feedback import FeedbackStore
from census_pipeline.predlog.privacy import Redaction
from census_pipeline.predlog.writer import PredictionLog, WriterSettings

logger = logging.getLogger(logs.LOGGER_NAME)

DESCRIPTION = """
Predicts whether a person's income is above 50K a year from 14 census answers (UCI Adult),
with a LightGBM model that the pipeline's deploy gate has blessed.

Send records with the course's keys (`education-num`, `marital-status`, `capital-gain`, ...;
the underscore spellings work too). Unknown fields, values outside the census categories and
numbers outside their ranges are refused with 422 naming the field.
"""


class StartupRefused(RuntimeError):
    """The service must not serve: the message says why and what to do."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    logs.configure(settings.log_level)
    app = FastAPI(
        title="Census income prediction",
        version=__version__,
        description=DESCRIPTION,
        lifespan=_lifespan,
        # Served by docs_pages from the install's own files instead of a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.model = None
    app.state.draining = False
    app.state.explain_pool = None
    all_routes = _include_routers(app, settings)
    _document_record_schema(app)
    docs_pages.install(app)
    handlers.install(app)
    # `app.routes` is read when the middleware stack is built, at start-up: every router
    # included by then has its body routes guarded.
    app.add_middleware(RequestGuard, routes=app.routes, limits=_body_limits(settings))
    app.state.telemetry = Telemetry(all_routes)
    app.add_middleware(RequestMetrics, telemetry=app.state.telemetry)
    return app


def _body_limits(settings: Settings) -> BodyLimits:
    """Single-record routes get a limit of kilobytes; every other body route the batch one."""
    record_routes = ["/predict", "/bench/bare"]
    return BodyLimits(
        default_bytes=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
        per_path=dict.fromkeys(record_routes, settings.max_record_body_bytes),
        settings=dict.fromkeys(record_routes, "CENSUS_API_MAX_RECORD_BODY_BYTES"),
        default_setting="CENSUS_API_MAX_BODY_BYTES",
        error_keys=dict.fromkeys(oip.body_paths(), oip.ERROR_KEY),
    )


def _include_routers(app: FastAPI, settings: Settings) -> list[str]:
    """Wire the routers, the prediction routes behind the API key when one is set; answer all
    paths (the metrics' route label: any other path counts as "other")."""
    # With no key configured the check is left out entirely rather than run as a no-op.
    guarded = [Depends(require_api_key)] if settings.api_key is not None else []
    plain = [
        root.router, health.router, model.router, oip.public, metrics.router, monitoring.router,
    ]  # fmt: skip
    for router in plain:
        app.include_router(router)
    with_bodies = [predict.router, oip.inference]
    if settings.prediction_log:
        with_bodies.append(feedback.router)
    if settings.enable_bare_endpoint:
        with_bodies.append(bench.router)
    for router in with_bodies:
        app.include_router(router, dependencies=guarded)
    return [route.path for route in _routes(plain + with_bodies)]


def _routes(routers: list[APIRouter]) -> list[APIRoute]:
    return [route for router in routers for route in router.routes if isinstance(route, APIRoute)]


def _document_record_schema(app: FastAPI) -> None:
    """Publish `CensusRecord`, `FeedbackItem` (and the OIP inference request) under components:
    the routes refer to them but parse bodies themselves (see `body.py`), so FastAPI does not
    add them."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["CensusRecord"] = CensusRecord.model_json_schema()
            # POST /feedback's body refers to it the same way (found by schemathesis: the
            # dangling reference left the body ungeneratable).
            schemas["FeedbackItem"] = FeedbackItem.model_json_schema()
            schemas.update(oip.component_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    _set_access_log(settings.access_log)
    try:
        served = load_served_model(settings)
    except PipelineError as exc:
        logger.critical("refusing to start: %s", exc)
        raise StartupRefused(str(exc)) from None
    app.state.model = served
    app.state.explain_pool = explain_pool(settings.explain_concurrency)
    drain_on_sigterm(app, settings.drain_s)
    _start_monitoring(app, settings, served)
    # Everything loaded so far (frameworks, model, schemas) lives as long as the process. Moving
    # it out of the collector's reach keeps full collections from scanning it again and again:
    # they were stalls of up to 100 ms in the latency tail (docs/api.md, "Performance").
    gc.freeze()
    logger.info(
        "serving model %s (sha256 %s, blessed: %s)",
        served.version,
        served.info.model_sha256[:12],
        served.info.blessed,
    )
    yield
    _stop_monitoring(app)
    app.state.model = None
    app.state.explain_pool.shutdown(wait=True, cancel_futures=True)
    served.predictor.close()


def _start_monitoring(app: FastAPI, settings: Settings, served: ServedModel) -> None:
    """The prediction log's writer thread and the metrics' flusher, in this worker process."""
    telemetry: Telemetry = app.state.telemetry
    telemetry.serve_model(served.version, served.info.model_sha256, served.info.blessed)
    log = None
    if settings.prediction_log:
        url = settings.log_database_url()
        key = settings.log_hash_key.get_secret_value().encode() if settings.log_hash_key else None
        log = PredictionLog(
            url,
            WriterSettings(
                capacity=settings.log_queue_capacity,
                batch_size=settings.log_batch_size,
                flush_seconds=settings.log_flush_seconds,
                retention_days=settings.log_retention_days,
            ),
            Redaction.of(settings.log_omit_fields, settings.log_hash_fields, key),
        )
        log.start()
        # Feedback's own pool; it connects on the first request, not here.
        app.state.feedback_store = FeedbackStore(make_engine(url))
        telemetry.watch_log(log.status)
    app.state.prediction_log = log
    app.state.tracker = Tracker(served.version, log, telemetry)
    telemetry.start()


def _stop_monitoring(app: FastAPI) -> None:
    log: PredictionLog | None = app.state.prediction_log
    if log is not None:
        log.close()
        app.state.feedback_store.engine.dispose()
    app.state.telemetry.stop()


def _set_access_log(enabled: bool) -> None:
    """uvicorn writes one line per request by default; that costs throughput (docs/api.md)."""
    logging.getLogger("uvicorn.access").disabled = not enabled
