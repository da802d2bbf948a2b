"""The per-request GraphQL context: who is asking, fresh loaders, the runtime's ports."""

from __future__ import annotations

from typing import TypeAlias

import strawberry
from strawberry.fastapi import BaseContext

from domain.errors import Unauthenticated
from domain.pagination import PageRequest, page_request
from domain.rate_limits import RequestWindow
from domain.records import User
from graph.loaders import Loaders
from graph.runtime import Runtime


class Context(BaseContext):
    def __init__(self, *, runtime: Runtime, viewer: User | None) -> None:
        super().__init__()
        self.runtime = runtime
        self.viewer = viewer
        self.loaders = Loaders(runtime)
        # Set before execution: the operation's static cost (graph/ query cost) and the caller's
        # request window once this request was counted (the rate limiter).
        self.query_cost: int | None = None
        self.request_window: RequestWindow | None = None

    def renew_loaders(self) -> None:
        """Subscriptions call this per emitted event: a WebSocket's context lives as long as the
        connection, and loaders cached that long would serve stale objects."""
        self.loaders = Loaders(self.runtime)

    def page(
        self,
        *,
        first: int | None,
        after: str | None,
        last: int | None = None,
        before: str | None = None,
    ) -> PageRequest:
        """The page a connection's arguments ask for, within the configured page sizes."""
        limits = self.runtime.limits
        return page_request(
            first=first,
            after=after,
            last=last,
            before=before,
            default_size=limits.default_page_size,
            max_size=limits.max_page_size,
        )

    def require_viewer(self) -> User:
        if self.viewer is None:
            raise Unauthenticated("send a valid token as `Authorization: Bearer <token>`")
        return self.viewer


Info: TypeAlias = strawberry.Info[Context, None]
