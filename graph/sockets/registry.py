"""The process's authenticated WebSockets, by user: admits a socket within the per-user limit
and closes every socket of a user whose tokens were revoked (on whichever process revoked them).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from graph.sockets.guard import FORBIDDEN, POLICY_VIOLATION, GuardedSocket
from graph.sockets.ports import SocketCoordinator

log = logging.getLogger("pantheon.sockets")

REVOCATION_MEMORY_SECONDS = 60.0
"""How long a revocation is remembered, to refuse a socket authenticated just before it."""


class SocketRegistry:
    def __init__(self, coordinator: SocketCoordinator, *, max_per_user: int) -> None:
        self.coordinator = coordinator
        self.max_per_user = max_per_user
        self._sockets: dict[uuid.UUID, set[GuardedSocket]] = {}
        self._revoked_at: dict[uuid.UUID, float] = {}  # user -> monotonic time it was heard of
        self._still_valid: dict[GuardedSocket, Callable[[], Awaitable[bool]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        coordinator.on_revoked(self._revoked)
        coordinator.on_reconnected(self._recheck_soon)

    def open_sockets(self, user_id: uuid.UUID) -> int:
        """This process's sockets of the user."""
        return len(self._sockets.get(user_id, ()))

    async def admit(
        self,
        socket: GuardedSocket,
        user_id: uuid.UUID,
        *,
        authenticated_at: float,
        still_valid: Callable[[], Awaitable[bool]],
    ) -> bool:
        """Counts an authenticated socket as the user's; closes it (and returns False) when the
        user has too many open, or when the token was revoked since `authenticated_at`
        (`time.monotonic()` just before the token was checked). `still_valid` checks the
        socket's token again (after revocations may have been missed: `recheck`)."""
        if self._revoked_since(user_id, authenticated_at):
            await socket.close(FORBIDDEN, "token revoked")
            return False
        if not await self.coordinator.claim(user_id, socket.id, limit=self.max_per_user):
            await socket.close(
                POLICY_VIOLATION, f"more than {self.max_per_user} open sockets for this user"
            )
            return False
        if socket.finished:  # the client left while the claim was counted
            await self.coordinator.release(user_id, socket.id)
            return False
        self._sockets.setdefault(user_id, set()).add(socket)
        self._still_valid[socket] = still_valid

        async def release() -> None:
            await self._release(user_id, socket)

        socket.on_end(release)
        if self._revoked_since(user_id, authenticated_at) or socket.closed:  # while claiming
            await socket.close(FORBIDDEN, "token revoked")
            return False
        return True

    async def revoke(self, user_id: uuid.UUID) -> None:
        """The user's tokens were revoked: close its sockets here and on every process."""
        self._revoked(user_id)
        await self.coordinator.announce_revoked(user_id)

    async def recheck(self) -> int:
        """Checks every open socket's token again and closes (4403) those no longer valid;
        run when revocations may have been missed (the revocation channel was lost).
        Returns how many were closed."""
        closed = 0
        for socket, still_valid in list(self._still_valid.items()):
            if socket.closed:
                continue
            try:
                valid = await still_valid()
            except Exception as exc:  # the database is down too: try at the next reconnect
                log.warning("re-checking socket tokens failed (%s)", type(exc).__name__)
                return closed
            if not valid:
                await socket.close(FORBIDDEN, "token revoked")
                closed += 1
        if closed:
            log.info("closed %d socket(s) whose tokens were revoked meanwhile", closed)
        return closed

    def _recheck_soon(self) -> None:
        self._spawn(self.recheck(), "socket-token-recheck")

    def _spawn(self, work: Awaitable[object], name: str) -> None:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _revoked_since(self, user_id: uuid.UUID, moment: float) -> bool:
        return self._revoked_at.get(user_id, float("-inf")) >= moment

    def _revoked(self, user_id: uuid.UUID) -> None:
        now = time.monotonic()
        self._revoked_at = {
            user: at
            for user, at in self._revoked_at.items()
            if now - at < REVOCATION_MEMORY_SECONDS
        }
        self._revoked_at[user_id] = now
        sockets = self._sockets.get(user_id, set())
        if sockets:
            log.info("closing %d socket(s) of user %s: tokens revoked", len(sockets), user_id)
        for socket in list(sockets):
            self._spawn(socket.close(FORBIDDEN, "token revoked"), "socket-revoked-close")

    async def _release(self, user_id: uuid.UUID, socket: GuardedSocket) -> None:
        self._still_valid.pop(socket, None)
        sockets = self._sockets.get(user_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._sockets[user_id]
        await self.coordinator.release(user_id, socket.id)

    async def aclose(self) -> None:
        await self.coordinator.aclose()
