"""Every Prometheus metric Pantheon exports, in one registry per app (docs/observability.md).

Label values are bounded: models and providers come from the catalog, root fields from the
schema, outcomes and limits from closed sets of codes; never an id or a user handle.

With `PROMETHEUS_MULTIPROC_DIR` set (before the process imports prometheus-client) every value is
written to a file in that directory, one set per process, and `/metrics` sums the directory:
correct with several worker processes. Callback gauges do not exist in that mode, so every gauge
is incremented and decremented, and aggregated with `livesum` (only live processes count).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from domain.enums import TurnMode, TurnStatus
from domain.turns.events import TurnEvent
from domain.turns.metering import UsageEntry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: from a fast cached call to a long reasoning answer or turn.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
PUBLISH_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


class PantheonMetrics:
    """The metrics and the few operations that feed them; built once per app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.graphql_operations = Counter(
            "pantheon_graphql_operations_total",
            "GraphQL operations executed, by type, first root field and outcome (ok or the code "
            "of the first error)",
            ["operation_type", "root_field", "outcome"],
            registry=r,
        )
        self.turns = Counter(
            "pantheon_turns_total",
            "Turns run to their end by this process, by mode and final status",
            ["mode", "status"],
            registry=r,
        )
        self.turn_duration = Histogram(
            "pantheon_turn_duration_seconds",
            "Wall time of a turn, from its runner's start to its close",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_call_duration = Histogram(
            "pantheon_llm_call_duration_seconds",
            "Wall time of an LLM call, retries included, by outcome (ok or the error code)",
            ["provider", "model", "call_kind", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_first_token = Histogram(
            "pantheon_llm_time_to_first_token_seconds",
            "Time from the start of a streamed LLM call to its first text delta",
            ["provider", "model"],
            buckets=FIRST_TOKEN_BUCKETS,
            registry=r,
        )
        self.llm_tokens = Counter(
            "pantheon_llm_tokens_total",
            "Tokens of committed usage rows (the ledger), by type prompt or completion",
            ["model", "call_kind", "billing_category", "type"],
            registry=r,
        )
        self.llm_cost = Counter(
            "pantheon_llm_cost_nano_usd_total",
            "Cost of committed usage rows (the ledger) in integer nano-USD",
            ["model", "call_kind", "billing_category"],
            registry=r,
        )
        self.active_subscriptions = Gauge(
            "pantheon_active_subscriptions",
            "GraphQL subscriptions open now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.running_turns = Gauge(
            "pantheon_running_turns",
            "Turns running now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.publish_lag = Histogram(
            "pantheon_event_publish_lag_seconds",
            "Time from an event's creation to its publication to subscribers (after its commit)",
            buckets=PUBLISH_LAG_BUCKETS,
            registry=r,
        )
        self.db_pool_in_use = Gauge(
            "pantheon_db_pool_connections_in_use",
            "Database connections checked out of the pool now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rate_limited = Counter(
            "pantheon_rate_limited_total",
            "Requests, operations, turns and sockets refused by a rate limit, by limit",
            ["limit"],
            registry=r,
        )

    # --- feeding ------------------------------------------------------------------------------

    def operation(self, operation_type: str, root_field: str, outcome: str) -> None:
        self.graphql_operations.labels(operation_type, root_field, outcome).inc()

    def refused(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()

    def usage_committed(self, entries: Sequence[UsageEntry]) -> None:
        """Called by the unit of work once the rows are committed: never before, never twice."""
        for entry in entries:
            labels = (entry.model_alias, entry.call_kind.value, entry.billing_category.value)
            self.llm_tokens.labels(*labels, "prompt").inc(entry.prompt_tokens)
            self.llm_tokens.labels(*labels, "completion").inc(entry.completion_tokens)
            self.llm_cost.labels(*labels).inc(entry.cost_nano)

    def events_published(self, events: Sequence[TurnEvent], *, now: float | None = None) -> None:
        published = time.time() if now is None else now
        for event in events:
            self.publish_lag.observe(max(0.0, published - event.at.timestamp()))

    def turn_started(self, mode: TurnMode) -> None:
        self.running_turns.inc()

    def turn_finished(self, mode: TurnMode, status: TurnStatus | None, seconds: float) -> None:
        # A turn whose close could not be written is left RUNNING for recovery to fail.
        self.running_turns.dec()
        self.turns.labels(mode.value, (status or TurnStatus.RUNNING).value).inc()
        self.turn_duration.labels(mode.value).observe(seconds)

    @contextmanager
    def subscription_open(self) -> Iterator[None]:
        self.active_subscriptions.inc()
        try:
            yield
        finally:
            self.active_subscriptions.dec()

    def connection_checked_out(self) -> None:
        self.db_pool_in_use.inc()

    def connection_checked_in(self) -> None:
        self.db_pool_in_use.dec()

    # --- exposing -----------------------------------------------------------------------------

    def collecting_registry(self) -> CollectorRegistry:
        """What `/metrics` serves: this process's registry, or every process's files."""
        directory = multiprocess_dir()
        if directory is None:
            return self.registry
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return registry

    def process_stopping(self) -> None:
        """At a clean shutdown: drop this process's live gauges from the shared directory (its
        counters and histograms stay, as they must: they are totals since the directory was
        created). A worker that dies without this leaves its gauges counted until
        `mark_process_dead(pid)` is called for it or the directory is emptied at start."""
        directory = multiprocess_dir()
        if directory is not None:
            mark_process_dead(os.getpid(), path=directory)
