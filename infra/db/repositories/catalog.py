from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.catalog import AgentSpec, ModelSpec
from domain.records import Agent, Model
from infra.db import mapping
from infra.db.models import AgentRow, ModelRow
from infra.db.types import utcnow


def _model_fields(spec: ModelSpec) -> dict[str, object]:
    fields: dict[str, object] = {
        "alias": spec.alias,
        "provider": spec.provider,
        "input_nano_per_mtok": spec.input_nano_per_mtok,
        "output_nano_per_mtok": spec.output_nano_per_mtok,
        "max_output_tokens": spec.max_output_tokens,
        "context_window": spec.context_window,
    }
    if spec.provider_model is not None:
        fields["provider_model"] = spec.provider_model
    return fields


def _agent_fields(spec: AgentSpec, model_id: uuid.UUID) -> dict[str, object]:
    return {
        "key": spec.key,
        "name": spec.name,
        "description": spec.description,
        "system_prompt": spec.system_prompt,
        "model_id": model_id,
        "enabled": spec.enabled,
    }


class SqlModelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_by_alias(self, alias: str) -> Model | None:
        row = await self._session.scalar(select(ModelRow).where(ModelRow.alias == alias))
        return mapping.model(row) if row else None

    async def insert(self, spec: ModelSpec) -> Model:
        now = utcnow()
        fields = {"provider_model": spec.alias, **_model_fields(spec)}
        row = ModelRow(id=uuid.uuid4(), created_at=now, updated_at=now, **fields)
        self._session.add(row)
        return mapping.model(row)

    async def update(self, model_id: uuid.UUID, spec: ModelSpec) -> Model:
        row = await self._session.get_one(ModelRow, model_id)
        for name, value in _model_fields(spec).items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        return mapping.model(row)


class SqlAgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get_by_key(self, key: str) -> Agent | None:
        row = await self._session.scalar(select(AgentRow).where(AgentRow.key == key))
        return mapping.agent(row) if row else None

    async def get_by_keys(self, keys: Sequence[str]) -> list[Agent]:
        rows = await self._session.scalars(select(AgentRow).where(AgentRow.key.in_(keys)))
        return [mapping.agent(row) for row in rows]

    async def list_enabled(self) -> list[Agent]:
        rows = await self._session.scalars(
            select(AgentRow).where(AgentRow.enabled).order_by(AgentRow.created_at, AgentRow.key)
        )
        return [mapping.agent(row) for row in rows]

    async def insert(self, spec: AgentSpec, *, model_id: uuid.UUID) -> Agent:
        now = utcnow()
        row = AgentRow(
            id=uuid.uuid4(), created_at=now, updated_at=now, **_agent_fields(spec, model_id)
        )
        self._session.add(row)
        return mapping.agent(row)

    async def update(self, agent_id: uuid.UUID, spec: AgentSpec, *, model_id: uuid.UUID) -> Agent:
        row = await self._session.get_one(AgentRow, agent_id)
        for name, value in _agent_fields(spec, model_id).items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        return mapping.agent(row)
