"""The port through which the supervisor reports turns to telemetry (infra/telemetry/ implements
it with Prometheus metrics), so the domain imports no metrics library."""

from __future__ import annotations

from typing import Protocol

from domain.enums import TurnMode, TurnStatus


class TurnObserver(Protocol):
    def turn_started(self, mode: TurnMode) -> None: ...

    def turn_finished(self, mode: TurnMode, status: TurnStatus | None, seconds: float) -> None:
        """`status` is the one the turn was closed with; None when its close was not written
        (the turn stays RUNNING until recovery fails it)."""
        ...


class NoTurnObserver:
    def turn_started(self, mode: TurnMode) -> None:
        return None

    def turn_finished(self, mode: TurnMode, status: TurnStatus | None, seconds: float) -> None:
        return None


NO_TURN_OBSERVER = NoTurnObserver()
