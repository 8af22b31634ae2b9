"""`/docs` (Swagger UI) and `/redoc` served with their scripts and styles from the install.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google Fonts from CDNs, so they are
blank without internet (an air-gapped deployment, a locked-down CI). The files come from the
`fastapi-offline` package (MIT, in the `serve` extra), whose only use here is that folder;
the pages themselves are FastAPI's, pointed at these copies. ReDoc's script also fetches its
maker's logo from a CDN for the side menu, whatever its options; the copy served here has that
address blanked, so the image fails without a request and ReDoc hides it (its own fallback).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs-assets"
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
REDOC_LOGO_URL = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def assets_folder() -> Path:
    """Where the installed Swagger UI and ReDoc files are."""
    return Path(str(resources.files("fastapi_offline") / "static"))


@functools.cache
def redoc_script() -> bytes:
    """ReDoc's script without its one outside address (read once, on first use)."""
    text = (assets_folder() / "redoc.standalone.js").read_text(encoding="utf-8")
    return text.replace(REDOC_LOGO_URL, "").encode("utf-8")


def install(app: FastAPI) -> None:
    """Mount the assets and add both pages (the app is built with docs_url=redoc_url=None)."""

    # Before the mount, which would otherwise serve the file as it is.
    @app.get(f"{ASSETS_PATH}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(redoc_script(), media_type="text/javascript; charset=utf-8")

    app.mount(ASSETS_PATH, StaticFiles(directory=assets_folder()), name="docs-assets")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_PATH}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: Swagger UI",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: ReDoc",
            redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
