"""The API documentation under /schema, whose UI the service serves itself.

Litestar's default pages load Redoc, Swagger UI and the others from CDNs, so offline (or
behind a proxy that blocks them) the docs were blank. Here one page, Swagger UI, is served at
/schema and /schema/swagger with its scripts, styles and icon from /schema/assets, vendored
from the npm package swagger-ui-dist (app/http/static/swagger-ui/README.md says which).
The schema itself stays at /schema/openapi.json (and .yaml).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from litestar import Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router

from app.http.auth import SCHEMA_PATH

ASSETS_DIR = Path(__file__).resolve().parent / "static" / "swagger-ui"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
# A file response guesses its type, and the first guess reads the system's mime.types: read it
# once here, at import, rather than inside the event loop on the first request for a file.
mimetypes.init()


def openapi_config() -> OpenAPIConfig:
    swagger = SwaggerRenderPlugin(
        path=["/", "/swagger"],
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )
    return OpenAPIConfig(title="Draftloop", version="0.1.0", path=SCHEMA_PATH,
                         render_plugins=[swagger, JsonRenderPlugin(), YamlRenderPlugin()])


def schema_assets_router() -> Router:
    """The UI's files; public like the rest of /schema (app/http/auth.py)."""
    # ASSETS_DIR is resolved once at import: resolving again here would touch the disk inside
    # the event loop when an app is built there (as the tests do).
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR], name="schema-assets",
                                      include_in_schema=False, opt={"public": True}, resolve_symlinks=False)
