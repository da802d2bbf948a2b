"""The per-request GraphQL context: who is asking, fresh loaders, the runtime's ports."""

from __future__ import annotations

from typing import TypeAlias

import strawberry
from strawberry.fastapi import BaseContext

from domain.errors import Unauthenticated
from domain.records import User
from graph.loaders import Loaders
from graph.runtime import Runtime


class Context(BaseContext):
    def __init__(self, *, runtime: Runtime, viewer: User | None) -> None:
        super().__init__()
        self.runtime = runtime
        self.viewer = viewer
        self.loaders = Loaders(runtime)

    def renew_loaders(self) -> None:
        """Subscriptions call this per emitted event: a WebSocket's context lives as long as the
        connection, and loaders cached that long would serve stale objects."""
        self.loaders = Loaders(self.runtime)

    def require_viewer(self) -> User:
        if self.viewer is None:
            raise Unauthenticated("send a valid token as `Authorization: Bearer <token>`")
        return self.viewer


Info: TypeAlias = strawberry.Info[Context, None]
