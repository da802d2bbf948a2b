"""The OpenTelemetry side of the runner's ``TurnTracer`` port (domain/turns/tracing.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.trace import Span, Status, StatusCode, Tracer

from domain.enums import TurnStatus
from domain.turns.metering import UsageEntry
from domain.turns.records import Turn
from domain.turns.tracing import TurnSpan

NANO_PER_USD = 1_000_000_000


class _OtelTurnSpan:
    __slots__ = ("_cost_nano", "_span")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._cost_nano = 0

    def agents_dispatched(self, count: int) -> None:
        self._span.set_attribute("pantheon.turn.agent_count", count)

    def metered(self, entries: Sequence[UsageEntry]) -> None:
        """One ``pantheon.usage`` event per usage row: the cost of an attempt is priced by
        metering, after its span (infra/telemetry/genai.py) has ended, so it is told here."""
        for entry in entries:
            self._cost_nano += entry.cost_nano
            attributes: dict[str, str | int | float] = {
                "pantheon.call_kind": str(entry.call_kind),
                "pantheon.attempt": entry.attempt,
                "pantheon.cost_usd": entry.cost_nano / NANO_PER_USD,
                "pantheon.token_source": str(entry.token_source),
                "pantheon.billing_category": str(entry.billing_category),
                "gen_ai.request.model": entry.provider_model or entry.model_alias,
                "gen_ai.usage.input_tokens": entry.prompt_tokens,
                "gen_ai.usage.output_tokens": entry.completion_tokens,
            }
            if entry.agent_key:
                attributes["pantheon.agent.key"] = entry.agent_key
            self._span.add_event("pantheon.usage", attributes)
        self._span.set_attribute("pantheon.cost_usd", self._cost_nano / NANO_PER_USD)

    def finished(self, status: TurnStatus) -> None:
        self._span.set_attribute("pantheon.turn.status", str(status))
        if status is TurnStatus.FAILED:
            self._span.set_status(Status(StatusCode.ERROR, "turn failed"))


class OtelTurnTracer:
    """Opens a ``turn`` span, current for the run, so the run's LLM attempt spans are its
    children and it is itself a child of the request that started the turn."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    @contextmanager
    def turn(self, turn: Turn) -> Iterator[TurnSpan]:
        attributes = {"pantheon.turn.id": str(turn.id), "pantheon.turn.mode": str(turn.mode)}
        with self._tracer.start_as_current_span("turn", attributes=attributes) as span:
            yield _OtelTurnSpan(span)
