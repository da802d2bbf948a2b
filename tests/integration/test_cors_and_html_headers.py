"""CORS for browser frontends on other origins (PANTHEON_CORS_ORIGINS), and the security headers
of every HTML page (GraphiQL): a CSP whose hashes match the page's inline blocks, no framing,
no sniffing, no Referer."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
import pytest

from graph.html_headers import content_security_policy, html_security_headers
from infra.settings import Settings, SettingsError, load_settings
from tests.conftest import Actor, running_app

FRONTEND = "https://app.example.com"
OTHER_FRONTEND = "https://admin.example.com"
STRANGER = "https://evil.example.net"
ME = "{ me { handle } }"


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://pantheon.test"
    )


def _preflight(origin: str, headers: str = "authorization, content-type") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


def _listed(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


# --- CORS ----------------------------------------------------------------------------------------


async def test_a_listed_origin_passes_the_preflight_with_authorization_and_content_type(
    settings: Settings,
) -> None:
    configured = settings.model_copy(update={"cors_origins": f"{FRONTEND}, {OTHER_FRONTEND}/"})
    async with running_app(configured) as (app, _gql), _client(app) as http:
        for origin in (FRONTEND, OTHER_FRONTEND):
            response = await http.options("/graphql", headers=_preflight(origin))
            assert response.status_code == 200, response.text
            assert response.headers["access-control-allow-origin"] == origin
            assert {"authorization", "content-type"} <= _listed(
                response.headers.get("access-control-allow-headers")
            )
            assert "POST" in response.headers["access-control-allow-methods"]
            assert "access-control-allow-credentials" not in response.headers


async def test_an_unlisted_origin_gets_no_cors_permission(settings: Settings) -> None:
    configured = settings.model_copy(update={"cors_origins": FRONTEND})
    async with running_app(configured) as (app, _gql), _client(app) as http:
        response = await http.options("/graphql", headers=_preflight(STRANGER))
        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers


async def test_responses_to_a_listed_origin_expose_the_retry_request_id_and_rate_headers(
    settings: Settings, alice: Actor
) -> None:
    configured = settings.model_copy(update={"cors_origins": FRONTEND})
    async with running_app(configured) as (app, _gql), _client(app) as http:
        response = await http.post(
            "/graphql",
            json={"query": ME},
            headers={"Origin": FRONTEND, "Authorization": f"Bearer {alice.token}"},
        )
        assert response.json() == {"data": {"me": {"handle": "alice"}}}
        assert response.headers["access-control-allow-origin"] == FRONTEND
        exposed = _listed(response.headers.get("access-control-expose-headers"))
        assert {
            "retry-after",
            "x-request-id",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        } <= exposed


async def test_without_configured_origins_there_is_no_cors(
    client: httpx.AsyncClient, alice: Actor
) -> None:
    preflight = await client.options("/graphql", headers=_preflight(FRONTEND))
    assert "access-control-allow-origin" not in preflight.headers
    response = await client.post(
        "/graphql",
        json={"query": ME},
        headers={"Origin": FRONTEND, "Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_are_a_comma_separated_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANTHEON_CORS_ORIGINS", f" {FRONTEND} ,{OTHER_FRONTEND}/,")
    assert load_settings().cors_origin_list == [FRONTEND, OTHER_FRONTEND]
    monkeypatch.setenv("PANTHEON_CORS_ORIGINS", "app.example.com")
    with pytest.raises(SettingsError, match=r"^PANTHEON_CORS_ORIGINS: 'app\.example\.com' is not"):
        load_settings()
    monkeypatch.delenv("PANTHEON_CORS_ORIGINS")
    assert load_settings().cors_origin_list == []


# --- HTML security headers ------------------------------------------------------------------------

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)  # no attributes: inline code


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (directive.split() for directive in policy.split(";") if directive.strip())
    return {name: values for name, *values in parts}


@pytest.mark.parametrize("path", ["/graphql", "/graphql?token=abc"])
async def test_graphiql_sends_a_csp_with_the_hashes_of_its_inline_code(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = _directives(response.headers["content-security-policy"])
    inline = _INLINE.findall(response.text)
    assert {kind for kind, _code in inline} == {"script", "style"}
    for kind, code in inline:
        # the hash of exactly the block's text, as the browser computes it
        assert _sha256(code) in policy[f"{kind}-src"], kind
    for kind in ("script-src", "style-src"):
        assert policy[kind][0] == "'self'"
        assert "'unsafe-inline'" not in policy[kind]
        assert len(policy[kind]) == 1 + sum(1 for k, _ in inline if f"{k}-src" == kind)
    assert policy["default-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["font-src"] == ["'self'", "data:"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_the_hashes_follow_the_page_not_a_fixed_list() -> None:
    page = (
        "<html><head><style>p { color: red }</style></head><body>"
        '<script src="/x.js"></script><script type="application/json">{"a": 1}</script>'
        "<script>alert(1)</script></body></html>"
    )
    policy = _directives(content_security_policy(page))
    assert policy["script-src"] == ["'self'", _sha256("alert(1)")]
    assert policy["style-src"] == ["'self'", _sha256("p { color: red }")]
    changed = _directives(content_security_policy(page.replace("alert(1)", "alert(2)")))
    assert changed["script-src"] == ["'self'", _sha256("alert(2)")]
    headers = html_security_headers("<p>no inline code</p>")
    assert _directives(headers["Content-Security-Policy"])["script-src"] == ["'self'"]
