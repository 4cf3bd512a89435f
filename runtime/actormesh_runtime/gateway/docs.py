"""The API docs pages, `/docs` (Swagger UI) and `/redoc`, that work offline.

FastAPI's own pages load their scripts, styles, favicon and (ReDoc) fonts from public CDNs, so they
are blank wherever the browser cannot reach those hosts: a sealed cluster, an air-gapped install, a
laptop on a train. Here the same pages load the assets the `fastapi-offline` package ships (we use
only its files), served by the gateway itself under `/docs/assets/`; nothing on either page names
another host. Swagger UI's validator badge (a call to validator.swagger.io) is switched off too.
Called by `gateway.app.create_app`, which turns FastAPI's default pages off.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
SWAGGER_PARAMETERS = {"validatorUrl": None}
"""`null` turns off the validator badge, which would otherwise fetch from validator.swagger.io."""


def assets_dir() -> Path:
    """Swagger UI's and ReDoc's bundles, as installed with the `fastapi-offline` package."""
    return Path(str(resources.files("fastapi_offline").joinpath("static")))


def add_docs(app: FastAPI) -> None:
    """Mount the assets and add both pages; the app must be created with docs_url/redoc_url None."""
    app.mount(ASSETS_PATH, StaticFiles(directory=assets_dir()), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        # root_path: behind an Ingress that strips a prefix, the browser still finds the files.
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    def spec(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=spec(request),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            oauth2_redirect_url=None,
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=spec(request),
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
