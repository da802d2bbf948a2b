"""`pantheon seed-usage`: realistic usage rows for development and benchmarks, never production.

Rows look like a busy deployment's ledger: several users (a few heavy ones), their sessions,
every catalog agent on its model, the manager's routing calls and the summarizer's two stages
with their default billing categories, a few unpriced and ESTIMATED rows and failed attempts,
spread evenly over the last N days in time order (the ledger is append-only). They meter no
content (no turns or messages): fine for reports, not for anything that reads turns.

Inserted in batches, one unit of work and one commit per batch (`domain.reports.seed_in_batches`):
PostgreSQL with COPY, SQLite with executemany.
"""

from __future__ import annotations

import random
import secrets
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

from domain.catalog import CatalogSpec, ModelSpec
from domain.enums import CallKind, Role, TokenSource
from domain.records import Model, User
from domain.reports import seed_in_batches
from domain.services import catalog as catalog_service
from domain.services import sessions as session_service
from domain.services import users as user_service
from domain.turns.metering import DEFAULT_CATEGORIES, cost_nano
from infra.db.engine import Database
from infra.db.models import UsageRecordRow
from infra.db.uow import SqlUnitOfWork

COLUMNS = (
    "id",
    "created_at",
    "user_id",
    "session_id",
    "agent_key",
    "call_kind",
    "billing_category",
    "position",
    "attempt",
    "provider",
    "model_alias",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "token_source",
    "unpriced",
    "input_nano_per_mtok",
    "output_nano_per_mtok",
    "cost_nano",
    "latency_ms",
    "succeeded",
    "error_code",
    "provider_model",
    "recovered",
)
# A model no catalog prices: its rows are `unpriced` with cost 0 (metering_policy.md).
UNPRICED = Model(
    id=uuid.UUID(int=0),
    alias="local-unpriced",
    provider="local",
    provider_model="local",
    input_nano_per_mtok=None,
    output_nano_per_mtok=None,
    max_output_tokens=2048,
    context_window=32768,
)
CALL_KIND_WEIGHTS = {
    CallKind.AGENT_RESPONSE: 80,
    CallKind.MANAGER_ROUTING: 10,
    CallKind.SUMMARY_GENERATION: 5,
    CallKind.SUMMARY_EXTRACTION: 5,
}
ESTIMATED, PROVIDER = TokenSource.ESTIMATED.value, TokenSource.PROVIDER.value
Batch = list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeedSpec:
    rows: int
    days: int = 90
    seed: int = 0
    users: int = 12
    sessions_per_user: int = 4
    batch_size: int = 20_000
    end: datetime | None = None  # default: now


@dataclass(frozen=True, slots=True, kw_only=True)
class Owner:
    user_id: uuid.UUID
    session_ids: tuple[uuid.UUID, ...]


class UsageBatchUnitOfWork(SqlUnitOfWork):
    """Stages a batch of generated usage rows; the seed use case commits it."""

    async def stage_batch(self, batch: Batch) -> int:
        session = self._require_session()
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            # Also begins the transaction, so the COPY below is part of this unit of work.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table(
                UsageRecordRow.__tablename__, records=batch, columns=COLUMNS
            )
        else:
            await session.execute(
                insert(UsageRecordRow), [dict(zip(COLUMNS, row, strict=True)) for row in batch]
            )
        return len(batch)


async def seed_usage(database: Database, catalog: CatalogSpec, spec: SeedSpec) -> int:
    """Creates the spec's users and sessions, then its usage rows; returns how many rows.
    The catalog's missing entries are inserted first, as at start, so sessions get a roster."""
    await catalog_service.sync_catalog(SqlUnitOfWork(database.writes), catalog, overwrite=False)
    owners = await create_owners(database, spec)
    generator = UsageGenerator(catalog, owners, spec)
    seeded = await seed_in_batches(
        lambda: UsageBatchUnitOfWork(database.writes), generator.batches()
    )
    await analyze(database)
    return seeded


async def create_owners(database: Database, spec: SeedSpec) -> list[Owner]:
    """Users `seed-<run>-NN` (a fresh run tag each time, so runs never collide) and sessions."""
    run = secrets.token_hex(3)
    limits = session_service.SessionLimits(max_title_length=200, max_roster_size=50)
    owners = []
    for number in range(1, spec.users + 1):
        issued = await user_service.create_user(
            SqlUnitOfWork(database.writes),
            user_service.CreateUser(handle=f"seed-{run}-{number:02}", role=Role.USER),
        )
        owners.append(await _with_sessions(database, issued.user, spec, limits))
    return owners


async def _with_sessions(
    database: Database, user: User, spec: SeedSpec, limits: session_service.SessionLimits
) -> Owner:
    sessions = [
        await session_service.create_session(
            SqlUnitOfWork(database.writes),
            user,
            session_service.CreateSession(title=f"Seeded session {number}"),
            limits,
        )
        for number in range(1, spec.sessions_per_user + 1)
    ]
    return Owner(user_id=user.id, session_ids=tuple(session.id for session in sessions))


async def analyze(database: Database) -> None:
    """Fresh planner statistics (and, on PostgreSQL, the visibility map index-only scans use)."""
    autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("VACUUM (ANALYZE) usage_records"))
        else:
            await connection.execute(text("ANALYZE usage_records"))


class UsageGenerator:
    """Deterministic for a given seed, catalog, owners and end."""

    def __init__(self, catalog: CatalogSpec, owners: Sequence[Owner], spec: SeedSpec) -> None:
        self._random = random.Random(spec.seed)
        self._spec = spec
        self._owners = list(owners)
        # A few heavy users, a long tail: weight 1/rank.
        self._owner_weights = [1 / rank for rank in range(1, len(owners) + 1)]
        models = {model.alias: _model(model) for model in catalog.models}
        self._agents = [(a.key, models[a.model_alias]) for a in catalog.agents if a.enabled]
        self._manager = models[catalog.manager_model]
        self._summarizer = models[catalog.summarizer_model]
        self._end = spec.end or datetime.now(UTC)

    def batches(self) -> Iterator[Batch]:
        spec = self._spec
        for first in range(0, spec.rows, spec.batch_size):
            count = min(spec.batch_size, spec.rows - first)
            yield [self.row(first + offset) for offset in range(count)]

    def row(self, number: int) -> tuple[Any, ...]:
        """The `number`-th row in time order: evenly spread over the span, with jitter."""
        rnd = self._random
        span = timedelta(days=self._spec.days)
        at = self._end - span + span * ((number + rnd.random()) / self._spec.rows)
        owner = rnd.choices(self._owners, weights=self._owner_weights)[0]
        kind = rnd.choices(list(CALL_KIND_WEIGHTS), weights=list(CALL_KIND_WEIGHTS.values()))[0]
        agent_key, model, position = self._caller(kind)
        prompt = min(int(rnd.lognormvariate(6.6, 0.8)), 60_000)
        completion = min(int(rnd.lognormvariate(5.2, 0.9)), model.max_output_tokens)
        failed = rnd.random() < 0.02
        return (
            uuid.uuid4(),
            at,
            owner.user_id,
            rnd.choice(owner.session_ids) if owner.session_ids else None,
            agent_key,
            kind.value,
            DEFAULT_CATEGORIES[kind].value,
            position,
            2 if rnd.random() < 0.01 else 1,
            model.provider,
            model.alias,
            prompt,
            0 if failed else completion,
            prompt // 4 if rnd.random() < 0.3 else 0,
            0,
            (ESTIMATED if failed or rnd.random() < 0.03 else PROVIDER),
            not model.priced,
            model.input_nano_per_mtok,
            model.output_nano_per_mtok,
            cost_nano(prompt, 0 if failed else completion, model),
            int(rnd.lognormvariate(7.0, 0.6)),
            not failed,
            "PROVIDER_TIMEOUT" if failed else None,
            model.provider_model,
            False,
        )

    def _caller(self, kind: CallKind) -> tuple[str | None, Model, int]:
        if kind is CallKind.MANAGER_ROUTING:
            return None, self._manager, 0
        if kind is not CallKind.AGENT_RESPONSE:
            return None, self._summarizer, 1 if kind is CallKind.SUMMARY_GENERATION else 2
        key, model = self._random.choice(self._agents)
        if self._random.random() < 0.01:
            model = UNPRICED
        return key, model, self._random.randint(1, 3)


def _model(spec: ModelSpec) -> Model:
    return Model(
        id=uuid.uuid4(),
        alias=spec.alias,
        provider=spec.provider,
        provider_model=spec.provider_model or spec.alias,
        input_nano_per_mtok=spec.input_nano_per_mtok,
        output_nano_per_mtok=spec.output_nano_per_mtok,
        max_output_tokens=spec.max_output_tokens,
        context_window=spec.context_window,
    )
