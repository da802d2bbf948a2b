"""One agent's deltas on their way to the broker, with at most one publish in flight.

The runner reads the provider's stream without waiting for the broker: a delta that arrives
while the previous publish is still out (a Redis round trip, shared with every other turn of
the process) waits for it, together with any others, and goes out merged in the next. With a
broker that keeps up, each delta is published on its own as soon as it arrives; with one that
does not, the turn still reads its stream at the provider's pace and its subscribers get
fewer, larger deltas instead of a growing lag. Sequence numbers are taken when a delta is
published, so they stay gap-free and in publication order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from domain.turns.events import TurnEvent

log = logging.getLogger("pantheon.turns.deltas")


class DeltaPublisher:
    def __init__(
        self,
        publish: Callable[[tuple[TurnEvent, ...]], Awaitable[None]],
        make_event: Callable[[str], TurnEvent],
    ) -> None:
        self._publish = publish
        self._make_event = make_event  # numbers the event: called in publication order
        self._pending: list[str] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, text: str) -> None:
        """Queues a delta; never waits."""
        self._pending.append(text)
        if self._task is None:
            self._task = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Returns once every delta added so far has been published, in order. The turn's
        next event must wait for this, so that it follows them."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        try:
            while self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                try:
                    await self._publish((self._make_event(text),))
                except Exception:  # publishers never raise; if one does, the turn goes on
                    log.exception("publishing a delta failed")
        finally:
            self._task = None
