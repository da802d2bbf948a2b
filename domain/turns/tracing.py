"""The port through which the runner marks its turn's trace span, free of OpenTelemetry.

The supervisor opens one ``TurnSpan`` around each run (in the run's own task, so every LLM call
attempt the run makes is its child); the runner tells it what only it knows: how many agents
were dispatched, what usage was metered, how the turn ended. With tracing off the app passes
``NO_TRACING``, whose span does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from domain.enums import TurnStatus
from domain.turns.metering import UsageEntry
from domain.turns.records import Turn


class TurnSpan(Protocol):
    def agents_dispatched(self, count: int) -> None: ...

    def metered(self, entries: Sequence[UsageEntry]) -> None: ...

    def finished(self, status: TurnStatus) -> None: ...


class TurnTracer(Protocol):
    def turn(self, turn: Turn) -> AbstractContextManager[TurnSpan]:
        """The span of one run of ``turn``, current while the context is entered."""
        ...


class _NoSpan:
    def agents_dispatched(self, count: int) -> None:
        pass

    def metered(self, entries: Sequence[UsageEntry]) -> None:
        pass

    def finished(self, status: TurnStatus) -> None:
        pass


NO_SPAN: TurnSpan = _NoSpan()


class _NoTracing:
    @contextmanager
    def turn(self, turn: Turn) -> Iterator[TurnSpan]:
        yield NO_SPAN


NO_TRACING: TurnTracer = _NoTracing()
