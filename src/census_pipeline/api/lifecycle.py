"""What a worker sets up at start-up besides the model: the explain pool and the SIGTERM drain.

Explanations (LightGBM's SHAP contributions) cost milliseconds of CPU each, a hundred times a
plain prediction. Run on the event loop they stalled every other request (64 explaining clients
pushed `/health` to 819 ms at p90), and LightGBM's OpenMP threads took every core. So they run
in a small pool of their own: `explain_concurrency` threads, each calling LightGBM with one
thread, at a lower CPU priority than the event loop, so probes and plain predictions keep their
latency while explanations take what is left. Requests beyond the pool's size wait their turn.

On SIGTERM the worker first drains: `/ready` answers 503 at once while requests are still
served for `drain_s`, so a load balancer stops sending new ones; then uvicorn's own graceful
shutdown closes idle keep-alive connections, lets in-flight requests finish (their connections
are closed after the answer) and cancels what is still running after its timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from fastapi import FastAPI

from census_pipeline.api import logs

logger = logging.getLogger(logs.LOGGER_NAME)

# Nice value of the explain threads (0 is the event loop's): the kernel then gives the event
# loop about nine times their share of a busy core.
EXPLAIN_NICENESS = 10


def explain_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=threads, thread_name_prefix="explain", initializer=_lower_priority
    )


def _lower_priority() -> None:
    """Linux schedules threads on their own, so one thread's nice value is its own."""
    if sys.platform != "linux":
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), EXPLAIN_NICENESS)
    except OSError as exc:  # not fatal: explanations then merely compete as equals
        logger.warning("could not lower the explain threads' priority: %s", exc)


def drain_on_sigterm(app: FastAPI, drain_s: float) -> None:
    """Chain a drain before the server's own SIGTERM handler (uvicorn's, installed before the
    lifespan runs). Only in the main thread, where signals are delivered: an app run some
    other way (a test client) has no server to drain."""
    if threading.current_thread() is not threading.main_thread():
        return
    server_handler = signal.getsignal(signal.SIGTERM)
    if not callable(server_handler):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if app.state.draining:  # a second SIGTERM: no more waiting
            server_handler(signum, frame)
            return
        app.state.draining = True
        # A signal handler may interrupt the loop anywhere: hand over through the thread-safe
        # door, and let the loop start the server's shutdown once the drain is over.
        loop.call_soon_threadsafe(_later, loop, drain_s, server_handler, signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _later(loop: asyncio.AbstractEventLoop, delay: float, handler: Any, *args: Any) -> None:
    logger.info("SIGTERM: /ready answers 503; shutting down in %g s", delay)
    loop.call_later(delay, handler, *args)
