"""One layout for the service's log lines, wherever they are printed.

uvicorn prints `INFO:     Started server process [...]`; our lines use the same level prefix
followed by the logger's name, so the CLI's pre-check, the server and every worker write one
format.
"""

from __future__ import annotations

import logging

LOGGER_NAME = "census_pipeline.api"


class ServiceFormatter(logging.Formatter):
    """`LEVEL:` padded like uvicorn's, then `name: message`."""

    def __init__(self) -> None:
        super().__init__("%(levelprefix)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.levelprefix = f"{record.levelname}:".ljust(9)
        return super().formatMessage(record)


def configure(level: str) -> None:
    """Our logger at `level`, with a handler in our layout unless the host already set one up
    (the `serve` command does, in this layout; pytest and platforms keep their own)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(ServiceFormatter())
        logger.addHandler(handler)


def use_service_format() -> None:
    """Print every record the root logger handles in the service's layout (the `serve` command)."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(ServiceFormatter())
