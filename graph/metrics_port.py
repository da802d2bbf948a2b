"""What graph/ reports to metrics, as a port: the composition root hands in infra/telemetry's
`PantheonMetrics` through the Runtime (graph/ reaches infra/ only from there)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

UNKNOWN = "unknown"  # the label of anything outside its closed set (a root field not in the schema)


class GraphMetrics(Protocol):
    def operation(self, operation_type: str, root_field: str, outcome: str) -> None: ...

    def refused(self, limit: str) -> None:
        """A rate limit refused a request, an operation or a socket."""
        ...

    def subscription_open(self) -> AbstractContextManager[None]:
        """Counts a subscription as open while the context lasts."""
        ...
