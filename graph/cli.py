"""The `pantheon` command. Works from any directory: migrations and the default catalog are
found through the installed packages, and every command uses the same default database."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from domain.enums import Role
from domain.errors import PantheonError
from domain.services import catalog as catalog_service
from domain.services import users as user_service
from graph.request_context import RequestIdFilter
from infra.catalog.loader import CatalogError, load_catalog
from infra.db import migrate as migrations
from infra.db.engine import Database, open_configured_database
from infra.db.faults import database_fault
from infra.db.uow import SqlUnitOfWork
from infra.events.redis_broker import RedisEventBroker, RedisUnavailable
from infra.logging import configure_logging
from infra.settings import Settings, SettingsError, load_settings
from infra.unknown_settings import unknown_variable_warnings

T = TypeVar("T")
log = logging.getLogger("pantheon.settings")

# A traceback never shows local variables: they hold settings, prompts and tokens.
app = typer.Typer(
    help="Pantheon: a GraphQL backend for multi-agent LLM chat.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
catalog_app = typer.Typer(
    help="The agent and model catalog.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
app.add_typer(catalog_app, name="catalog")
ledger_app = typer.Typer(
    help="The usage ledger: consistency checks, reconciliation with a provider's export.",
    no_args_is_help=True,
)
app.add_typer(ledger_app, name="ledger")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging(
        settings.log_level,
        settings.log_format,
        record_filter=RequestIdFilter(),
        content=settings.log_content,
    )
    for warning in unknown_variable_warnings(os.environ):
        log.warning("%s", warning)
    return settings


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        try:
            database = open_configured_database(settings)
        except OSError as error:  # the embedded default's directory cannot be made
            raise DatabaseUnreachable(
                f"PANTHEON_DATA_DIR: cannot create {error.filename}: {error.strerror}"
            ) from None
        try:
            if settings.embedded:  # the embedded default needs no separate migrate step
                await migrations.upgrade(database.engine)
            return await work(database)
        except Exception as error:
            unreachable = DatabaseUnreachable.of(database, error)
            if unreachable is None:
                raise
            raise unreachable from None
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except DatabaseUnreachable as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    except PantheonError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from None
    except CatalogError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


class DatabaseUnreachable(Exception):
    """A database fault (infra/db/faults.py) as the one line a command prints."""

    @classmethod
    def of(cls, database: Database, error: Exception) -> DatabaseUnreachable | None:
        fault = database_fault(error)
        if fault is None:
            return None
        variable = "PANTHEON_DATA_DIR" if database.is_sqlite else "PANTHEON_DATABASE_URL"
        return cls(f"{variable}: cannot reach {database.location}: {fault}")


def _check_infrastructure(settings: Settings) -> None:
    """Before serving: the database (and Redis, when configured) answer, or the start ends in
    one line (exit 1) rather than in the traceback of a failed ASGI lifespan."""

    async def ping(database: Database) -> None:
        await database.ping()
        if settings.redis_url:
            broker = RedisEventBroker(settings.redis_url, prefix=settings.redis_key_prefix)
            try:
                await broker.check()
            finally:
                await broker.aclose()

    try:
        _with_database(settings, ping)
    except RedisUnavailable as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (PANTHEON_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (PANTHEON_PORT)")] = None,
) -> None:
    """Serve the API (GraphQL and GraphiQL at /graphql). Migrates the embedded default itself."""
    import uvicorn

    from graph.app import create_app  # the web stack is loaded only for the commands using it

    settings = _settings()
    try:
        load_catalog(settings.catalog_file)  # fail in one line before the server starts
    except CatalogError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    _check_infrastructure(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        access_log=False,  # pantheon.access logs each request once (graph/access_log.py)
        # X-Forwarded-For is believed only from PANTHEON_TRUSTED_PROXIES (docs/rate_limits.md),
        # not also from uvicorn's default trusted 127.0.0.1.
        proxy_headers=False,
        **server_limits(settings),
    )


def server_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn's connection limits from the settings (docs/operations.md, *Connections*).
    uvicorn has no timeout for reading request headers or bodies: put a reverse proxy that has
    one in front."""
    return {
        "limit_concurrency": settings.limit_concurrency,  # HTTP and WebSocket connections
        "timeout_keep_alive": settings.keep_alive_seconds,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        # The app enforces the same bound itself (graph/sockets/guard.py), whatever the server.
        "ws_max_size": settings.max_websocket_message_bytes,
    }


@app.command()
def migrate() -> None:
    """Upgrade the database to the latest schema (under an advisory lock on PostgreSQL)."""
    settings = _settings()

    async def work(database: Database) -> str | None:
        await migrations.upgrade(database.engine)
        return await migrations.current_revision(database.engine)

    revision = _with_database(settings, work)
    typer.echo(f"database at revision {revision}")


@app.command("create-user")
def create_user(
    handle: str,
    admin: Annotated[bool, typer.Option("--admin", help="give the ADMIN role")] = False,
    budget: Annotated[str | None, typer.Option(help="monthly budget in USD")] = None,
) -> None:
    """Create a user and print its first API token (shown only this once)."""
    settings = _settings()
    try:
        monthly_budget = Decimal(budget) if budget is not None else None
    except InvalidOperation:
        typer.echo("error: --budget must be a decimal amount", err=True)
        raise typer.Exit(2) from None
    command = user_service.CreateUser(
        handle=handle, role=Role.ADMIN if admin else Role.USER, monthly_budget_usd=monthly_budget
    )
    issued = _with_database(
        settings, lambda db: user_service.create_user(SqlUnitOfWork(db.writes), command)
    )
    typer.echo(f"created {issued.user.role.value.lower()} {issued.user.handle}")
    typer.echo(issued.secret)


@catalog_app.command("sync")
def catalog_sync(
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="the file wins over admins' edits")
    ] = False,
) -> None:
    """Insert catalog entries missing from the database (and with --overwrite, reset the rest)."""
    settings = _settings()

    async def work(database: Database) -> catalog_service.SyncReport:
        catalog = load_catalog(settings.catalog_file)
        return await catalog_service.sync_catalog(
            SqlUnitOfWork(database.writes), catalog.spec, overwrite=overwrite
        )

    report = _with_database(settings, work)
    typer.echo(
        f"catalog synced: {report.inserted} inserted, {report.updated} updated, "
        f"{report.unchanged} left as they are"
    )


@app.command("export-schema")
def export_schema(
    output: Annotated[Path | None, typer.Option(help="write here instead of stdout")] = None,
) -> None:
    """Print the GraphQL schema (SDL) the code defines."""
    from graph.schema import build_schema

    sdl = build_schema().as_str() + "\n"
    if output is None:
        sys.stdout.write(sdl)
    else:
        output.write_text(sdl, encoding="utf-8")


@app.command("seed-usage")
def seed_usage(
    rows: Annotated[int, typer.Option(min=1, help="how many usage rows to insert")],
    days: Annotated[int, typer.Option(min=1, help="spread them over the last N days")] = 90,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same distribution)")] = 0,
) -> None:
    """DEV/BENCH ONLY: insert realistic usage rows (new seed users and sessions), committed in
    batches; a failure keeps the batches already committed."""
    from infra.db.seed_usage import SeedSpec
    from infra.db.seed_usage import seed_usage as seed_rows

    settings = _settings()
    spec = SeedSpec(rows=rows, days=days, seed=seed)

    async def work(database: Database) -> int:
        return await seed_rows(database, load_catalog(settings.catalog_file).spec, spec)

    seeded = _with_database(settings, work)
    typer.echo(f"seeded {seeded} usage rows over {days} days")


@ledger_app.command("check")
def ledger_check(
    lease_grace: Annotated[
        float,
        typer.Option(min=0, help="seconds a RUNNING turn may be past its lease (a sweep is due)"),
    ] = 60.0,
) -> None:
    """Print every inconsistency, one per line: usage without content, content without usage,
    reservations never settled, turns RUNNING past their lease, costs that are not their tokens
    at their price snapshot. Exits 1 when there is any."""
    from datetime import UTC, datetime, timedelta

    from domain.ledger import check_ledger
    from infra.db.ledger_reads import SqlLedgerReads

    settings = _settings()
    findings = _with_database(
        settings,
        lambda db: check_ledger(
            SqlLedgerReads(db.reads),
            now=datetime.now(UTC),
            lease_grace=timedelta(seconds=lease_grace),
        ),
    )
    for finding in findings:
        typer.echo(finding.line())
    typer.echo(f"{len(findings)} finding(s)", err=True)
    if findings:
        raise typer.Exit(1)


@ledger_app.command("reconcile")
def ledger_reconcile(
    export: Annotated[Path, typer.Argument(help="the provider's usage export (JSON)")],
    provider: Annotated[
        str | None, typer.Option(help="only the ledger rows of this catalog provider")
    ] = None,
) -> None:
    """Compare the ledger's tokens per UTC day and vendor model with an OpenAI usage export
    (organization usage API, completions, bucket_width=1d, group_by=model) over the export's
    period; print each difference, one per line. Exits 1 when there is any."""
    from domain.ledger import reconcile
    from infra.db.ledger_reads import SqlLedgerReads
    from infra.llm.usage_export import UsageExportError, read_usage_export

    settings = _settings()
    try:
        usage = read_usage_export(export)
    except UsageExportError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    ledger = _with_database(
        settings,
        lambda db: SqlLedgerReads(db.reads).tokens_by_day_and_model(
            start=usage.start, end=usage.end, provider=provider
        ),
    )
    differences = reconcile(ledger, usage.rows)
    for difference in differences:
        typer.echo(difference.line())
    typer.echo(
        f"{len(differences)} difference(s) from {usage.start.isoformat()} to "
        f"{usage.end.isoformat()}",
        err=True,
    )
    if differences:
        raise typer.Exit(1)


def main() -> None:
    app()
