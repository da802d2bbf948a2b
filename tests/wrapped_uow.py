"""A real unit of work behind a wrapper that changes only what a test subclass overrides
(`commit`, in practice): everything else is the inner unit's."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self


class WrappedUnitOfWork:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
