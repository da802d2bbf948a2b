"""Rows to the domain's frozen records."""

from __future__ import annotations

from domain.records import Agent, Model, Session, User
from infra.db.models import AgentRow, ModelRow, SessionRow, UserRow


def user(row: UserRow) -> User:
    return User(
        id=row.id,
        handle=row.handle,
        role=row.role,
        monthly_budget_nano=row.monthly_budget_nano,
        created_at=row.created_at,
    )


def model(row: ModelRow) -> Model:
    return Model(
        id=row.id,
        alias=row.alias,
        provider=row.provider,
        provider_model=row.provider_model,
        input_nano_per_mtok=row.input_nano_per_mtok,
        output_nano_per_mtok=row.output_nano_per_mtok,
        max_output_tokens=row.max_output_tokens,
        context_window=row.context_window,
    )


def agent(row: AgentRow) -> Agent:
    return Agent(
        id=row.id,
        key=row.key,
        name=row.name,
        description=row.description,
        system_prompt=row.system_prompt,
        model_id=row.model_id,
        enabled=row.enabled,
    )


def session(row: SessionRow) -> Session:
    return Session(
        id=row.id,
        owner_id=row.owner_id,
        title=row.title,
        default_mode=row.default_mode,
        turn_count=row.turn_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )
