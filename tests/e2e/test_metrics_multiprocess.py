"""Prometheus multiprocess mode: two `pantheon serve` processes sharing one
PROMETHEUS_MULTIPROC_DIR (and one embedded database) each serve the sum of both on /metrics;
a process that stops cleanly takes its live gauges with it, and its counts stay."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.integration.test_cli import cli_env, me, running_server
from tests.metrics_support import Scrape

pytestmark = [pytest.mark.timeout(120)]

OPERATIONS = "pantheon_graphql_operations_total"


def scrape(url: str) -> Scrape:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def test_two_processes_sharing_a_multiprocess_dir_report_the_sum(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = cli_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(shared))
    with running_server(tmp_path, env, tmp_path / "a.log") as a:
        token = a.demo_admin_token()
        with running_server(tmp_path, env, tmp_path / "b.log") as b:
            # when: two operations served by A, one by B
            for server in (a, a, b):
                assert me(server, token)["handle"] == "admin"

            # then: each process answers with both processes' counts
            for server in (a, b):
                metrics = scrape(server.url)
                ok = metrics.total(
                    OPERATIONS, operation_type="query", root_field="me", outcome="ok"
                )
                assert ok == 3
                assert metrics.total("pantheon_db_pool_connections_in_use") >= 0
            b_pid = b.process.pid
            assert any(f.name == f"gauge_livesum_{b_pid}.db" for f in shared.iterdir())

        # and: B stopped cleanly, so its live gauges are gone while its counts remain
        assert not any(str(b_pid) in f.name and "gauge_live" in f.name for f in shared.iterdir())
        metrics = scrape(a.url)
        assert metrics.total(OPERATIONS, operation_type="query", root_field="me", outcome="ok") == 3
