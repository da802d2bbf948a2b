"""The dashboard and alert rules in docs/observability/ query only metrics `/metrics` serves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import GraphQL
from tests.metrics_support import Scrape

ASSETS = Path(__file__).resolve().parents[2] / "docs" / "observability"
METRIC = re.compile(r"\bpantheon_[a-z0-9_]+")


def dashboard_queries() -> list[str]:
    dashboard = json.loads((ASSETS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(queries) >= len(dashboard["panels"]) > 0
    return queries


def alert_queries() -> list[str]:
    rules: dict[str, Any] = yaml.safe_load((ASSETS / "alerts.yml").read_text(encoding="utf-8"))
    queries = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert queries
    return queries


async def test_every_metric_the_dashboard_and_alerts_query_is_served(gql: GraphQL) -> None:
    response = await gql.client.get("/metrics")
    served = Scrape(response.text).names()

    queried = {
        name for query in dashboard_queries() + alert_queries() for name in METRIC.findall(query)
    }

    assert queried, "no metric found in the assets"
    assert queried - served == set()
    # and: the assets cover every metric Pantheon defines (nothing exported goes unwatched)
    families = {
        name
        for name in Scrape(response.text).families
        if name.startswith("pantheon_") and not name.endswith("_created")  # creation times
    }
    covered = {name for name in families if any(n.startswith(name) for n in queried)}
    assert covered == families
