"""Start-up and shutdown of the composition root: database (migrated on the embedded default),
catalog sync, the demo admin on the embedded default's first start, the LLM gateway, the event
broker and the turn supervisor."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from domain.calibration import EwmaCalibration
from domain.enums import CallKind, Role
from domain.errors import Conflict
from domain.llm import LLMGateway
from domain.rate_limits import RateLimiter, RateLimitPolicy
from domain.services import catalog as catalog_service
from domain.services import users as user_service
from domain.services.sessions import SessionLimits
from domain.turns.events import EventBroker
from domain.turns.metering import DEFAULT_CATEGORIES, MeteringPolicy
from domain.turns.observer import NO_TURN_OBSERVER
from domain.turns.runner import RunnerDeps
from domain.turns.settings import TurnSettings
from domain.turns.supervisor import TurnSupervisor
from domain.turns.tracing import NO_TRACING
from graph.runtime import Limits, Runtime
from graph.sockets.ports import InMemorySocketCoordinator, SocketCoordinator
from graph.sockets.registry import SocketRegistry
from infra.catalog.loader import Catalog, load_catalog
from infra.db import migrate
from infra.db.engine import Database, open_configured_database
from infra.db.event_reads import SqlOutboxReads
from infra.db.reads import SqlReadStore
from infra.db.report_reads import SqlReportReads
from infra.db.summary_reads import SqlSummaryReads
from infra.db.turn_reads import SqlTurnReads
from infra.db.uow import SqlUnitOfWork
from infra.events.memory import InMemoryEventBroker
from infra.events.redis_broker import RedisEventBroker
from infra.faults import infra_fault
from infra.llm.registry import build_gateway
from infra.rate_limits import CounterStores, memory_counters, redis_counters
from infra.settings import Settings
from infra.sockets.redis_coordinator import RedisSocketCoordinator
from infra.telemetry.db_pool import watch_pool
from infra.telemetry.genai import AttemptSpans
from infra.telemetry.llm import MeteredGateway
from infra.telemetry.metrics import PantheonMetrics
from infra.telemetry.tracing import Tracing
from infra.telemetry.turns import OtelTurnTracer

log = logging.getLogger("pantheon.startup")

DEMO_ADMIN_HANDLE = "admin"


@dataclass(frozen=True, slots=True)
class Started:
    database: Database
    catalog: Catalog
    gateway: LLMGateway
    owns_gateway: bool
    runtime: Runtime
    broker: EventBroker | None = None
    counters: CounterStores | None = None


def open_db(settings: Settings) -> Database:
    return open_configured_database(settings)


async def start(
    settings: Settings,
    *,
    migrate_first: bool,
    gateway: LLMGateway | None = None,
    metrics: PantheonMetrics | None = None,
    tracing: Tracing | None = None,
) -> Started:
    """`gateway` replaces the catalog's providers (tests use it to inject a double; it then
    traces its attempts only if it was built with `tracing`'s spans). `tracing` None: off."""
    catalog = load_catalog(settings.catalog_file)
    database = open_db(settings)
    if metrics is not None:
        watch_pool(database.engine, metrics)
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
    broker = build_broker(settings)
    if isinstance(broker, RedisEventBroker):
        try:
            await broker.check()  # one clear line when Redis is unreachable
        except Exception:
            await broker.aclose()
            await database.dispose()
            raise
        log.info("events: Redis at %s, key prefix %r", broker.where, broker.prefix)
    owns_gateway = gateway is None
    spans = AttemptSpans(tracing) if tracing is not None else None
    gateway = gateway or build_gateway(catalog.providers, spans=spans)
    counters = build_counters(settings)
    runtime = build_runtime(
        settings,
        database,
        catalog,
        gateway,
        broker=broker,
        counters=counters,
        metrics=metrics,
        tracing=tracing,
    )
    if isinstance(runtime.sockets.coordinator, RedisSocketCoordinator):
        runtime.sockets.coordinator.start()
    runtime.supervisor.start_sweeper(settings.recovery_interval_seconds)
    return Started(
        database=database,
        catalog=catalog,
        gateway=gateway,
        owns_gateway=owns_gateway,
        runtime=runtime,
        broker=broker,
        counters=counters,
    )


async def stop(started: Started, settings: Settings) -> None:
    try:
        await started.runtime.supervisor.shutdown(grace_seconds=settings.shutdown_grace_seconds)
    finally:
        try:
            if started.owns_gateway:
                await started.gateway.aclose()
        finally:
            try:
                if started.broker is not None:
                    await started.broker.aclose()
                if started.counters is not None:
                    await started.counters.aclose()
            finally:
                try:
                    await started.runtime.sockets.aclose()
                finally:
                    await started.database.dispose()


def turn_settings(settings: Settings, catalog: Catalog) -> TurnSettings:
    categories = dict(DEFAULT_CATEGORIES)
    categories[CallKind.MANAGER_ROUTING] = settings.routing_billing_category
    categories[CallKind.SUMMARY_GENERATION] = settings.summary_billing_category
    categories[CallKind.SUMMARY_EXTRACTION] = settings.summary_billing_category
    return TurnSettings(
        max_message_chars=settings.max_message_chars,
        max_agents_per_turn=settings.max_agents_per_turn,
        manager_cap=settings.manager_max_agents,
        max_running_turns_per_user=settings.max_running_turns_per_user,
        lease_seconds=settings.turn_lease_seconds,
        heartbeat_seconds=settings.turn_heartbeat_seconds,
        manager_model=catalog.spec.manager_model,
        summarizer_model=catalog.spec.summarizer_model,
        summary_threshold=settings.summary_threshold,
        policy=MeteringPolicy(categories=categories),
        min_output_tokens=settings.min_output_tokens,
        budget_warning_fraction=settings.budget_warning_fraction,
        # One per process: admission, the cap and metering all read what its calls taught it.
        calibration=EwmaCalibration(
            default_expected_completion=settings.default_expected_completion_tokens
        ),
    )


def build_broker(settings: Settings) -> EventBroker:
    """Redis Streams when PANTHEON_REDIS_URL is set (many processes), else in memory."""
    if settings.redis_url:
        return RedisEventBroker(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            retention_seconds=settings.event_retention_seconds,
            max_stream_length=settings.redis_stream_max_length,
        )
    return InMemoryEventBroker(retention_seconds=settings.event_retention_seconds)


def build_counters(settings: Settings) -> CounterStores:
    """The rate limits' counters: on Redis when PANTHEON_REDIS_URL is set (shared by every
    process), else in memory (this process only)."""
    if settings.redis_url:
        return redis_counters(settings.redis_url, prefix=settings.redis_key_prefix)
    return memory_counters()


def rate_limit_policy(settings: Settings) -> RateLimitPolicy:
    return RateLimitPolicy(
        requests_per_minute=settings.rate_limit_requests_per_minute,
        turns_per_minute=settings.rate_limit_turns_per_minute,
        tokens_per_minute=settings.rate_limit_tokens_per_minute,
        auth_failures_per_minute=settings.rate_limit_auth_failures_per_minute,
    )


def build_socket_registry(settings: Settings) -> SocketRegistry:
    """Socket counts and revocations shared through Redis when PANTHEON_REDIS_URL is set."""
    coordinator: SocketCoordinator
    if settings.redis_url:
        coordinator = RedisSocketCoordinator(settings.redis_url, prefix=settings.redis_key_prefix)
    else:
        coordinator = InMemorySocketCoordinator()
    return SocketRegistry(coordinator, max_per_user=settings.max_websockets_per_user)


def build_runtime(
    settings: Settings,
    database: Database,
    catalog: Catalog,
    gateway: LLMGateway,
    *,
    broker: EventBroker | None = None,
    counters: CounterStores | None = None,
    metrics: PantheonMetrics | None = None,
    tracing: Tracing | None = None,
) -> Runtime:
    turns = turn_settings(settings, catalog)
    if metrics is not None:
        gateway = MeteredGateway(gateway, metrics)  # times the runner's calls
    if broker is None:
        broker = build_broker(settings)
    limiter = RateLimiter(rate_limit_policy(settings), counters or build_counters(settings))

    def new_uow() -> SqlUnitOfWork:
        # Publishes what each unit staged in the outbox once it committed.
        # With metrics, the same commit feeds the ledger counters.
        return SqlUnitOfWork(database.writes, publisher=broker, observer=metrics)

    supervisor = TurnSupervisor(
        RunnerDeps(
            new_uow=new_uow,
            gateway=gateway,
            publisher=broker,
            settings=turns,
            rate_limiter=limiter,
            observer=metrics or NO_TURN_OBSERVER,
            tracer=OtelTurnTracer(tracing.tracer) if tracing is not None else NO_TRACING,
        ),
        runner_id=uuid.uuid4().hex,
    )
    # A cancelTurn served by any process reaches this one's runner at once.
    broker.on_cancel_request(supervisor.cancel_local)
    return Runtime(
        new_uow=new_uow,
        reads=SqlReadStore(database.reads),
        turn_reads=SqlTurnReads(database.reads),
        summary_reads=SqlSummaryReads(database.reads),
        report_reads=SqlReportReads(database.reads),
        turns=turns,
        supervisor=supervisor,
        broker=broker,
        outbox=SqlOutboxReads(database.reads),
        catalog=catalog.spec,
        providers=frozenset(catalog.providers),
        limits=Limits(
            default_page_size=settings.default_page_size,
            max_page_size=settings.max_page_size,
            sessions=SessionLimits(
                max_title_length=settings.max_title_length,
                max_roster_size=settings.max_roster_size,
            ),
            subscriber_buffer=settings.subscriber_buffer,
            max_query_cost=settings.max_query_cost,
        ),
        rate_limiter=limiter,
        trusted_proxies=settings.trusted_proxy_networks,
        sockets=build_socket_registry(settings),
        infra_fault=infra_fault,
        metrics=metrics,
    )


async def _demo_admin_once(database: Database) -> None:
    """Only on an empty embedded database: tokens are stored hashed, so this is the one chance
    to show the secret."""
    async with SqlUnitOfWork(database.writes) as uow:
        if await uow.users.exists_any():
            return
    try:
        issued = await user_service.create_user(
            SqlUnitOfWork(database.writes),
            user_service.CreateUser(handle=DEMO_ADMIN_HANDLE, role=Role.ADMIN),
        )
    except Conflict:  # another process starting on the same data dir made it first
        log.info("demo admin %r was created by another process", DEMO_ADMIN_HANDLE)
        return
    log.warning(
        "first start: created demo admin %r; its token (shown only now): %s",
        issued.user.handle,
        issued.secret,
    )
