"""Running Alembic from Pantheon: any directory, inside a running event loop, one at a time."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
# An arbitrary constant both `pantheon migrate` processes agree on.
_ADVISORY_LOCK_KEY = 0x50414E5448  # "PANTH"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def known_revisions() -> frozenset[str]:
    """Every revision this code's migrations define."""
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(revision.revision for revision in script.walk_revisions())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrades under a PostgreSQL advisory lock, so two processes starting together queue."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
            )
            await connection.commit()
        try:
            await connection.run_sync(_run, "upgrade", revision)
            await connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
                await connection.commit()


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    async with engine.connect() as connection:
        await connection.run_sync(_run, "downgrade", revision)
        await connection.commit()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def _run(connection: Connection, action: str, revision: str) -> None:
    config = alembic_config(connection)
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)
