from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import Role
from domain.records import User
from infra.db import mapping
from infra.db.models import ApiTokenRow, UserRow
from infra.db.types import utcnow


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, *, handle: str, role: Role, monthly_budget_nano: int | None) -> User:
        now = utcnow()
        row = UserRow(
            id=uuid.uuid4(),
            handle=handle,
            role=role,
            monthly_budget_nano=monthly_budget_nano,
            created_at=now,
            updated_at=now,
        )
        self._session.add(row)
        return mapping.user(row)

    async def get(self, user_id: uuid.UUID) -> User | None:
        row = await self._session.get(UserRow, user_id)
        return mapping.user(row) if row else None

    async def set_budget(self, user_id: uuid.UUID, monthly_budget_nano: int | None) -> User:
        row = await self._session.get_one(UserRow, user_id)
        row.monthly_budget_nano = monthly_budget_nano
        row.updated_at = utcnow()
        return mapping.user(row)

    async def exists_any(self) -> bool:
        return bool(await self._session.scalar(select(exists().select_from(UserRow))))


class SqlTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, *, user_id: uuid.UUID, digest: str, display_prefix: str) -> None:
        self._session.add(
            ApiTokenRow(
                id=uuid.uuid4(),
                user_id=user_id,
                token_hash=digest,
                display_prefix=display_prefix,
                created_at=utcnow(),
            )
        )

    async def revoke_all(self, user_id: uuid.UUID, *, at: datetime) -> int:
        result = await self._session.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.user_id == user_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
