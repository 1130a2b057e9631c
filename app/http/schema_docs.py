"""The API documentation under /schema, whose UI the service serves itself.

Litestar's default pages load Redoc, Swagger UI and the others from CDNs, so offline (or
behind a proxy that blocks them) the docs were blank. Here one page, Swagger UI, is served at
/schema and /schema/swagger with its scripts, styles and icon from /schema/assets, vendored
from the npm package swagger-ui-dist (app/http/static/swagger-ui/README.md says which).
The schema itself stays at /schema/openapi.json (and .yaml); /openapi.json and /docs answer
the same schema and page where langgraph-api serves them.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from litestar import MediaType, Request, Response, Router, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router

from app.http.auth import DOCS_ALIAS, SCHEMA_PATH

ASSETS_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
# A file response guesses its type, and the first guess reads the system's mime.types: read it
# once here, at import, rather than inside the event loop on the first request for a file.
mimetypes.init()


def _swagger() -> SwaggerRenderPlugin:
    return SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(title="Draftloop", version="0.1.0", path=SCHEMA_PATH,
                         render_plugins=[_swagger(), JsonRenderPlugin(), YamlRenderPlugin()])


def _schema(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()


@get("/openapi.json", opt={"public": True}, include_in_schema=False, media_type=MediaType.JSON,
     sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    """langgraph-api's path of the schema: the same JSON as /schema/openapi.json."""
    return Response(JsonRenderPlugin.render_json(request, _schema(request)), media_type=MediaType.JSON)


@get(DOCS_ALIAS, opt={"public": True}, include_in_schema=False, media_type=MediaType.HTML, sync_to_thread=False)
def docs_page(request: Request[Any, Any, Any]) -> Response[bytes]:
    """langgraph-api's path of the docs page: the same page as /schema."""
    return Response(_swagger().render(request, _schema(request)), media_type=MediaType.HTML)


def schema_assets_router() -> Router:
    """The UI's files; public like the rest of /schema (app/http/auth.py)."""
    # ASSETS_DIR is resolved once at import: resolving again here would touch the disk inside
    # the event loop when an app is built there (as the tests do).
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR], name="schema-assets",
                                      include_in_schema=False, opt={"public": True}, resolve_symlinks=False)
