"""What the socket registry needs shared between processes: a count of each user's open sockets
and a broadcast of revocations. In memory for one process; Redis (infra/sockets/) for many."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Protocol


class SocketCoordinator(Protocol):
    async def claim(self, user_id: uuid.UUID, socket_id: str, *, limit: int) -> bool:
        """Counts the socket as one of the user's, unless the user already has `limit`."""
        ...

    async def release(self, user_id: uuid.UUID, socket_id: str) -> None: ...

    async def announce_revoked(self, user_id: uuid.UUID) -> None:
        """Tells every process (this one included) that the user's tokens were revoked."""
        ...

    def on_revoked(self, callback: Callable[[uuid.UUID], None]) -> None: ...

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        """Called when the broadcast was lost for a while and works again: revocations sent
        meanwhile never arrived, so the registry checks its sockets' tokens again."""
        ...

    async def aclose(self) -> None: ...


class InMemorySocketCoordinator:
    """One process: the count and the broadcast are local."""

    def __init__(self) -> None:
        self._claims: dict[uuid.UUID, set[str]] = {}
        self._callbacks: list[Callable[[uuid.UUID], None]] = []

    async def claim(self, user_id: uuid.UUID, socket_id: str, *, limit: int) -> bool:
        claims = self._claims.setdefault(user_id, set())
        if len(claims) >= limit:
            return False
        claims.add(socket_id)
        return True

    async def release(self, user_id: uuid.UUID, socket_id: str) -> None:
        claims = self._claims.get(user_id)
        if claims is not None:
            claims.discard(socket_id)
            if not claims:
                del self._claims[user_id]

    async def announce_revoked(self, user_id: uuid.UUID) -> None:
        for callback in list(self._callbacks):
            callback(user_id)

    def on_revoked(self, callback: Callable[[uuid.UUID], None]) -> None:
        self._callbacks.append(callback)

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        """In memory the broadcast is never lost."""

    async def aclose(self) -> None:
        self._claims.clear()
