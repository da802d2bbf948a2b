"""`costReport` on a million usage rows: GraphQL over HTTP against the same GROUP BY run raw.

    PYTHONPATH=. python bench/cost_report.py [--rows 1000000] [--days 90] [--iterations 15]
        [--database-url postgresql+asyncpg://...] [--keep]

1. A fresh PostgreSQL database (beside $PANTHEON_TEST_DATABASE_URL, or 127.0.0.1:5432, or the
   server of --database-url), migrated, seeded with `--rows` rows over `--days` days by the
   `pantheon seed-usage` code (COPY in batches, then VACUUM ANALYZE); dropped at the end
   unless --keep.
2. The app in this process (`create_app`, lifespan started), reached through httpx's
   ASGITransport: the whole HTTP stack (middleware, auth, Strawberry, JSON) without a socket.
3. Per scenario: `costReport` grouped by [DAY, MODEL] over the last 30 days and by [USER] over
   the last 90 days, interleaved with the statement the report runs
   (`infra.db.report_reads.cost_report_statement`) executed raw through asyncpg (prepared, $n
   parameters) on a connection of its own; p50/p90 of each, their ratio, and the plan's scan.
4. Four configurations: with and without `ix_usage_records_cost_report` (migration 0002), each
   under the server's planner defaults and with `random_page_cost = 1.1` (the usual setting
   for SSDs or a cached working set; set on the bench database only). PostgreSQL's default 4
   prices the wide covering index's pages as random disk reads, so it prefers the heap.

Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.enums import Role  # noqa: E402
from domain.reports import CostDimension, CostReportQuery, cost_report_query  # noqa: E402
from domain.services import users as user_service  # noqa: E402
from graph.app import create_app  # noqa: E402
from infra.catalog.loader import load_catalog  # noqa: E402
from infra.db.engine import open_database  # noqa: E402
from infra.db.report_reads import cost_report_statement  # noqa: E402
from infra.db.seed_usage import SeedSpec, seed_usage  # noqa: E402
from infra.db.uow import SqlUnitOfWork  # noqa: E402
from infra.settings import DEFAULT_CATALOG, Settings  # noqa: E402
from tests import db as testdb  # noqa: E402

LOCAL_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REPORT_INDEX = "ix_usage_records_cost_report"
TOTALS = (
    "calls promptTokens completionTokens costUsd billableCostUsd overheadCostUsd unpricedCalls "
    "refusedCalls"
)
REPORT = f"""query($input: CostReportInput!) {{
  costReport(input: $input) {{
    rows {{
      user {{ handle }} agentKey modelAlias callKind billingCategory day totals {{ {TOTALS} }}
    }}
    totals {{ {TOTALS} }}
  }}
}}"""
WARMUP = 3


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def prepare(url: str, rows: int, days: int) -> str:
    """Seeds the database; returns an admin's token."""
    database = await testdb.open_migrated(url)
    try:
        catalog = load_catalog(DEFAULT_CATALOG).spec
        started = time.perf_counter()
        seeded = await seed_usage(database, catalog, SeedSpec(rows=rows, days=days, seed=46))
        seconds = time.perf_counter() - started
        print(f"seeded {seeded:,} rows in {seconds:.1f} s ({seeded / seconds:,.0f} rows/s)")
        issued = await user_service.create_user(
            SqlUnitOfWork(database.writes),
            user_service.CreateUser(handle="bench-admin", role=Role.ADMIN),
        )
        return issued.secret
    finally:
        await database.dispose()


async def configure(url: str, *, index: bool, random_page_cost: float | None) -> None:
    """Drops the report index (for good) when `index` is False; sets the planner cost."""
    name = make_url(url).database
    database = open_database(url)
    try:
        autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as connection:
            if not index:
                await connection.execute(text(f"DROP INDEX IF EXISTS {REPORT_INDEX}"))
            setting = "RESET random_page_cost"
            if random_page_cost is not None:
                setting = f"SET random_page_cost = {random_page_cost}"
            await connection.execute(text(f'ALTER DATABASE "{name}" {setting}'))
    finally:
        await database.dispose()


def raw_statement(query: CostReportQuery) -> tuple[str, list[Any]]:
    compiled = cost_report_statement(query).compile(dialect=postgresql.asyncpg.dialect())
    values = [compiled.params[name] for name in compiled.positiontup or ()]
    return str(compiled), [str(v) if isinstance(v, str) else v for v in values]


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def scenario(
    name: str,
    query: CostReportQuery,
    client: httpx.AsyncClient,
    token: str,
    raw: asyncpg.Connection,
    iterations: int,
) -> tuple[float, float]:
    variables = {
        "input": {
            "from": query.range.start.isoformat(),
            "to": query.range.end.isoformat(),
            "groupBy": [d.value for d in query.group_by],
        }
    }
    sql, params = raw_statement(query)
    headers = {"Authorization": f"Bearer {token}"}
    rows: list[Any] = []

    async def graphql() -> None:
        response = await client.post(
            "/graphql", json={"query": REPORT, "variables": variables}, headers=headers
        )
        body = response.json()
        assert "errors" not in body, body
        rows[:] = body["data"]["costReport"]["rows"]

    async def direct() -> None:
        await raw.fetch(sql, *params)

    for _ in range(WARMUP):
        await graphql()
        await direct()
    api, sql_times = [], []
    for _ in range(iterations):  # interleaved, so drift hits both
        api.append(await timed(graphql))
        sql_times.append(await timed(direct))
    plan = [r[0].strip() for r in await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params)]
    scans = [line.split("(")[0].lstrip("-> ") for line in plan if "Scan" in line]
    buffers = next((line for line in plan if line.startswith("Buffers")), "")
    p50_api, p50_sql = statistics.median(api), statistics.median(sql_times)
    print(f"\n{name}: {len(rows)} rows")
    print(f"  GraphQL/HTTP  p50 {p50_api * 1e3:7.1f} ms   p90 {pct(api, 0.9) * 1e3:7.1f} ms")
    print(f"  raw asyncpg   p50 {p50_sql * 1e3:7.1f} ms   p90 {pct(sql_times, 0.9) * 1e3:7.1f} ms")
    print(f"  ratio (p50)   {p50_api / p50_sql:.2f}x   overhead {(p50_api - p50_sql) * 1e3:.1f} ms")
    print(f"  plan: {scans[0] if scans else plan[0]}; {buffers} (8 kB pages)")
    return p50_api, p50_sql


async def measure(url: str, token: str, iterations: int, days: int) -> list[tuple[float, float]]:
    settings = Settings(database_url=url, log_level="WARNING")
    app = create_app(settings, migrate_on_start=False)
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    raw = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    scenarios = {
        "[DAY, MODEL] over 30 days": cost_report_query(
            start=now - timedelta(days=30),
            end=now,
            dimensions=[CostDimension.DAY, CostDimension.MODEL],
        ),
        f"[USER] over {days} days": cost_report_query(
            start=now - timedelta(days=days), end=now, dimensions=[CostDimension.USER]
        ),
    }
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=60
            ) as client:
                return [
                    await scenario(name, query, client, token, raw, iterations)
                    for name, query in scenarios.items()
                ]
    finally:
        await raw.close()


def print_summary(summary: list[tuple[str, list[tuple[float, float]]]], days: int) -> None:
    print(f"\nsummary: p50 ms, GraphQL / raw (ratio); [DAY, MODEL] 30 d | [USER] {days} d")
    for label, figures in summary:
        cells = [f"{api * 1e3:6.1f} / {raw * 1e3:6.1f} ({api / raw:.2f}x)" for api, raw in figures]
        print(f"  {label:<52} {cells[0]} | {cells[1]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--database-url", default=None, help="server to create the database on")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    admin = args.database_url or testdb.pg_admin_url() or LOCAL_PG
    url = asyncio.run(testdb.create_pg_database(admin, prefix="pantheon_bench"))
    print(f"database {make_url(url).database} (PostgreSQL)")
    try:
        token = asyncio.run(prepare(url, args.rows, args.days))
        summary = []
        for index in (True, False):  # the index goes for good: with it first
            for cost in (None, 1.1):
                label = (
                    f"{'with' if index else 'without'} the report index, "
                    f"{'server defaults' if cost is None else f'random_page_cost={cost}'}"
                )
                print(f"\n=== {label}")
                asyncio.run(configure(url, index=index, random_page_cost=cost))
                summary.append(
                    (label, asyncio.run(measure(url, token, args.iterations, args.days)))
                )
        print_summary(summary, args.days)
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            asyncio.run(testdb.drop_pg_database(admin, url))


if __name__ == "__main__":
    main()
