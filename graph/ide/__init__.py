"""Offline GraphiQL: an IDE page whose JS/CSS are served by Pantheon itself.

Strawberry's stock GraphiQL page pulls React and GraphiQL from a CDN and renders blank
without internet. The assets are vendored (pinned, with licenses) into ``static/`` by
``scripts/vendor_graphiql.sh``; this module renders the page that references them.

Wiring (FastAPI)::

    app.mount(ASSETS_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphql-ide")

    class PantheonGraphQLRouter(GraphQLRouter):
        async def render_graphql_ide(self, request: Request) -> HTMLResponse:
            return HTMLResponse(render_ide_html())
"""

from __future__ import annotations

import hashlib
import html
import json
from functools import lru_cache
from pathlib import Path
from typing import Final

__all__ = [
    "ASSETS_URL_PREFIX",
    "GRAPHQL_PATH",
    "STATIC_DIR",
    "TOKEN_PLACEHOLDER",
    "render_ide_html",
]

_HERE: Final = Path(__file__).resolve().parent

STATIC_DIR: Final[Path] = _HERE / "static"
"""Vendored GraphiQL assets (flat folder); mount it with StaticFiles at ASSETS_URL_PREFIX."""

ASSETS_URL_PREFIX: Final = "/graphql-ide"
"""URL path where the app mounts ``StaticFiles(directory=STATIC_DIR)``."""

GRAPHQL_PATH: Final = "/graphql"
"""GraphQL endpoint: HTTP POST for queries/mutations, same path over ws(s) for subscriptions."""

TOKEN_PLACEHOLDER: Final = "<paste your token>"
"""Shown in the headers editor; a header still holding it is not sent to the server."""

_TEMPLATE_PATH: Final = _HERE / "graphiql.html"
_MANIFEST_PATH: Final = STATIC_DIR / "VENDORED.txt"

_DEFAULT_QUERY: Final = """\
# Pantheon GraphiQL
#
# Auth: in the "Headers" tab below, replace the
# placeholder with your token:
#   {"Authorization": "Bearer <your token>"}
# or open this page as /graphql?token=<your token>.
# Every operation needs the token, the schema's
# introspection too: after pasting it, press
# "Re-fetch GraphQL schema" (Shift-Ctrl-R).
# Subscriptions send the same headers as
# WebSocket connection params.
#
# Run: Ctrl-Enter   Autocomplete: Ctrl-Space
#
"""


@lru_cache(maxsize=1)
def _template() -> str:
    return _TEMPLATE_PATH.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _asset_version() -> str:
    """Cache-busting token that changes whenever the vendored files are re-generated."""
    try:
        manifest = _MANIFEST_PATH.read_bytes()
    except FileNotFoundError:
        return "unvendored"
    return hashlib.sha256(manifest).hexdigest()[:12]


def _script_json(value: object) -> str:
    """JSON safe to embed inside a <script> element (cannot close it or open a comment)."""
    return (
        json.dumps(value, ensure_ascii=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )


def render_ide_html(
    *,
    graphql_path: str = GRAPHQL_PATH,
    assets_url_prefix: str = ASSETS_URL_PREFIX,
) -> str:
    """Return the GraphiQL page; it references only same-origin asset URLs.

    ``graphql_path`` is resolved against the page URL in the browser: HTTP requests go
    to it and subscriptions to the same path over ``ws://`` (``wss://`` under https).
    """
    config = {
        "graphqlPath": graphql_path,
        "tokenPlaceholder": TOKEN_PLACEHOLDER,
        "defaultQuery": _DEFAULT_QUERY,
    }
    return (
        _template()
        .replace("{{ASSETS}}", html.escape(assets_url_prefix.rstrip("/"), quote=True))
        .replace("{{VERSION}}", _asset_version())
        .replace("{{CONFIG}}", _script_json(config))
    )
