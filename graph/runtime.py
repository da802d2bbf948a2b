"""What a request needs from the running service, assembled once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from domain.catalog import CatalogSpec
from domain.ports import ReadStore
from domain.rate_limits import UNLIMITED, RateLimiter
from domain.reports import ReportReads
from domain.services.sessions import SessionLimits
from domain.summaries.ports import SummaryReads
from domain.turns.events import EventBroker, OutboxReads
from domain.turns.ports import TurnReads, TurnUnitOfWork
from domain.turns.settings import TurnSettings
from domain.turns.supervisor import TurnSupervisor
from graph.errors import InfraFault, no_infra_fault
from graph.metrics_port import GraphMetrics
from graph.sockets.registry import SocketRegistry


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    default_page_size: int
    max_page_size: int
    sessions: SessionLimits
    subscriber_buffer: int = 256  # events a subscriber may fall behind before SLOW_CONSUMER
    max_query_cost: int = 5_000  # an operation's static cost limit (graph/cost/model.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    """Ports and limits; built in graph/app.py, handed to every request's context."""

    new_uow: Callable[[], TurnUnitOfWork]
    reads: ReadStore
    turn_reads: TurnReads
    report_reads: ReportReads
    summary_reads: SummaryReads
    turns: TurnSettings
    supervisor: TurnSupervisor
    broker: EventBroker
    outbox: OutboxReads
    catalog: CatalogSpec
    providers: frozenset[str]  # provider names the catalog file declares
    limits: Limits
    sockets: SocketRegistry  # open WebSockets by user: the per-user limit, revocation
    rate_limiter: RateLimiter = UNLIMITED
    # Peers whose X-Forwarded-For is believed (graph/client_address.py); none by default.
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # Recognises infrastructure faults (graph/errors.py answers them SERVICE_UNAVAILABLE).
    infra_fault: InfraFault = no_infra_fault
    metrics: GraphMetrics | None = None  # None where no app exports them (unit tests, CLI)
