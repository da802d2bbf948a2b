"""`GET /metrics` in Prometheus's text format, behind a bearer token when one is configured."""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.telemetry.metrics import PantheonMetrics

METRICS_PATH = "/metrics"


def register_metrics_route(app: FastAPI, metrics: PantheonMetrics, *, token: str | None) -> None:
    expected = f"Bearer {token}".encode() if token else None

    @app.get(METRICS_PATH, include_in_schema=False)
    async def scrape(request: Request) -> Response:
        if expected is not None:
            sent = request.headers.get("authorization", "").encode()
            # Constant time: the comparison must not tell a prober how much of the token matched.
            if not hmac.compare_digest(sent, expected):
                return Response(
                    "a valid metrics token is required\n",
                    status_code=401,
                    media_type="text/plain",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body = generate_latest(metrics.collecting_registry())
        return Response(body, media_type=CONTENT_TYPE_LATEST)
