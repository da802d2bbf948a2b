"""What repositories hand to services: frozen snapshots of stored rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from domain.enums import Role, TurnMode


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    id: uuid.UUID
    handle: str
    role: Role
    monthly_budget_nano: int | None
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    id: uuid.UUID
    alias: str
    provider: str
    provider_model: str
    input_nano_per_mtok: int | None
    output_nano_per_mtok: int | None
    max_output_tokens: int
    context_window: int

    @property
    def priced(self) -> bool:
        return self.input_nano_per_mtok is not None and self.output_nano_per_mtok is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    id: uuid.UUID
    key: str
    name: str
    description: str
    system_prompt: str
    model_id: uuid.UUID
    enabled: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    default_mode: TurnMode
    turn_count: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
