"""GraphiQL at /graphql must work offline: the page references only assets Pantheon serves."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from graph.ide import ASSETS_URL_PREFIX, STATIC_DIR, TOKEN_PLACEHOLDER, render_ide_html

MIN_ASSET_BYTES = 1_000


class _AssetRefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []
        self.inline_json: dict[str, str] = {}
        self._json_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"] or "")
        elif tag == "script" and attributes.get("type") == "application/json":
            self._json_id = attributes.get("id") or ""
        elif tag == "link" and attributes.get("href"):
            self.links.append(attributes["href"] or "")

    def handle_data(self, data: str) -> None:
        if self._json_id is not None:
            self.inline_json[self._json_id] = data

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._json_id = None


def _build_app() -> FastAPI:
    app = FastAPI()
    app.mount(ASSETS_URL_PREFIX, StaticFiles(directory=STATIC_DIR), name="graphql-ide")

    @app.get("/graphql", response_class=HTMLResponse)
    async def graphiql() -> HTMLResponse:
        return HTMLResponse(render_ide_html())

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def _parse(page: str) -> _AssetRefs:
    refs = _AssetRefs()
    refs.feed(page)
    refs.close()
    return refs


async def test_page_has_no_external_url(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for needle in ("http://", "https://", "//cdn", "unpkg", "jsdelivr"):
        assert needle not in page.lower(), f"external reference {needle!r} in the IDE page"
    # No protocol-relative URL either.
    refs = _parse(page)
    for url in refs.scripts + refs.links:
        assert url.startswith(f"{ASSETS_URL_PREFIX}/"), url
        assert not url.startswith("//"), url


async def test_every_referenced_asset_is_served(client: httpx.AsyncClient) -> None:
    refs = _parse((await client.get("/graphql")).text)
    # react, react-dom, graphiql, explorer plugin; graphiql + plugin stylesheets.
    assert len(refs.scripts) >= 3
    assert len(refs.links) >= 1
    expected = [(url, "javascript") for url in refs.scripts]
    expected += [(url, "text/css") for url in refs.links]
    for url, kind in expected:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert kind in response.headers["content-type"], (url, response.headers["content-type"])
        assert len(response.content) > MIN_ASSET_BYTES, url


async def test_core_bundles_and_licenses_are_vendored() -> None:
    names = {path.name for path in STATIC_DIR.iterdir()}
    for required in (
        "graphiql.min.js",
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "LICENSE.graphiql.txt",
        "LICENSE.react.txt",
        "LICENSE.react-dom.txt",
        "VENDORED.txt",
    ):
        assert required in names
    assert all(path.is_file() for path in STATIC_DIR.iterdir()), "static/ must stay flat"
    # graphql-ws (subscriptions via createFetcher's subscriptionUrl) is inside the bundle.
    bundle = (STATIC_DIR / "graphiql.min.js").read_text(encoding="utf-8")
    assert "graphql-transport-ws" in bundle
    total = sum(path.stat().st_size for path in STATIC_DIR.iterdir())
    assert total < 6_000_000


async def test_page_config_headers_and_endpoints(client: httpx.AsyncClient) -> None:
    page = (await client.get("/graphql")).text
    config = json.loads(_parse(page).inline_json["pantheon-ide-config"])
    assert config["graphqlPath"] == "/graphql"
    assert config["tokenPlaceholder"] == TOKEN_PLACEHOLDER
    assert "isHeadersEditorEnabled: true" in page
    assert "subscriptionUrl" in page
    assert re.search(r"searchParams\.get\(\"token\"\)", page)


def test_render_is_parametrisable() -> None:
    page = render_ide_html(graphql_path="/api/graphql", assets_url_prefix="/static/ide/")
    assert 'src="/static/ide/graphiql.min.js?v=' in page
    assert '"graphqlPath": "/api/graphql"' in page
