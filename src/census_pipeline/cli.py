"""`census-pipeline <step>`: a thin Typer layer over the step functions.

Each command parses options, calls one plain function and prints a short summary. Errors the user
can fix (`PipelineError`) become one clear line on stderr and exit status 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from census_pipeline.config import Params, load_params
from census_pipeline.errors import PipelineError

app = typer.Typer(
    help="Census Income pipeline: ingest, validate, clean, train, evaluate, audit, card, gate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[
    Path | None,
    typer.Option(
        "--params", help="Path to params.yaml (default: $CENSUS_PIPELINE_PARAMS or the repo's)."
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def _clear_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a PipelineError into one line on stderr and exit 1, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _params(path: Path | None) -> Params:
    return load_params(path)
