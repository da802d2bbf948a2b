"""Start-up work of the composition root: open the database, migrate (embedded default), sync the
catalog file, create the demo admin on the embedded default's first start."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from domain.enums import Role
from domain.services import catalog as catalog_service
from domain.services import users as user_service
from domain.services.sessions import SessionLimits
from graph.runtime import Limits, Runtime
from infra.catalog.loader import Catalog, load_catalog
from infra.db import migrate
from infra.db.engine import Database, open_database
from infra.db.reads import SqlReadStore
from infra.db.uow import SqlUnitOfWork
from infra.settings import Settings

log = logging.getLogger("pantheon.startup")

DEMO_ADMIN_HANDLE = "admin"


@dataclass(frozen=True, slots=True)
class Started:
    database: Database
    catalog: Catalog
    runtime: Runtime


def open_db(settings: Settings) -> Database:
    return open_database(
        settings.effective_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )


async def start(settings: Settings, *, migrate_first: bool) -> Started:
    catalog = load_catalog(settings.catalog_file)
    database = open_db(settings)
    if migrate_first:
        await migrate.upgrade(database.engine)
    report = await catalog_service.sync_catalog(
        SqlUnitOfWork(database.writes), catalog.spec, overwrite=False
    )
    log.info(
        "catalog %s: %d inserted, %d kept", settings.catalog_file, report.inserted, report.unchanged
    )
    if settings.embedded:
        await _demo_admin_once(database)
    return Started(
        database=database, catalog=catalog, runtime=build_runtime(settings, database, catalog)
    )


def build_runtime(settings: Settings, database: Database, catalog: Catalog) -> Runtime:
    return Runtime(
        new_uow=lambda: SqlUnitOfWork(database.writes),
        reads=SqlReadStore(database.reads),
        catalog=catalog.spec,
        providers=frozenset(catalog.providers),
        limits=Limits(
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
            sessions=SessionLimits(
                max_title_length=settings.max_title_length,
                max_roster_size=settings.max_roster_size,
            ),
        ),
    )


async def _demo_admin_once(database: Database) -> None:
    """Only on an empty embedded database: tokens are stored hashed, so this is the one chance
    to show the secret."""
    async with SqlUnitOfWork(database.writes) as uow:
        if await uow.users.exists_any():
            return
    issued = await user_service.create_user(
        SqlUnitOfWork(database.writes),
        user_service.CreateUser(handle=DEMO_ADMIN_HANDLE, role=Role.ADMIN),
    )
    log.warning(
        "first start: created demo admin %r; its token (shown only now): %s",
        issued.user.handle,
        issued.secret,
    )
