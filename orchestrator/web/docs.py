"""The API's page at ``/docs``: Swagger UI served from this process, never from a CDN.

FastAPI's page loads Swagger UI's script and style from a CDN by default, which a server
without internet access (or a browser behind a strict proxy) cannot reach: the page stays
blank. The files ship in the ``fastapi-offline`` package (part of the ``[http]`` extra); they
are served under :data:`ASSETS_PATH` and the page points there.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "DOCS_PATH", "install_docs"]

#: The page.
DOCS_PATH = "/docs"
#: Where the Swagger UI files are served (no token needed, like the page).
ASSETS_PATH = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Serve the page and its files (create ``app`` with ``docs_url=None``)."""
    directory = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS_PATH, StaticFiles(directory=directory), name="docs-assets")
    redirect = f"{DOCS_PATH}/oauth2-redirect"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def page() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=redirect,
        )

    @app.get(redirect, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
