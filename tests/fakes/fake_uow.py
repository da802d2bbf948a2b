"""In-memory repositories and unit of work for unit tests of the use cases (no database).

Changes are staged on copies and only become visible in the shared `FakeStore` on `commit()`,
so a test can tell committed work from work rolled back by leaving `async with`.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from domain.catalog import AgentSpec, ModelSpec
from domain.enums import Role, TurnMode
from domain.errors import Conflict
from domain.records import Agent, Model, Session, User


@dataclass
class FakeStore:
    users: dict[uuid.UUID, User] = field(default_factory=dict)
    tokens: dict[str, tuple[uuid.UUID, datetime | None]] = field(default_factory=dict)
    models: dict[uuid.UUID, Model] = field(default_factory=dict)
    agents: dict[uuid.UUID, Agent] = field(default_factory=dict)
    sessions: dict[uuid.UUID, Session] = field(default_factory=dict)
    rosters: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    running_turns: set[uuid.UUID] = field(default_factory=set)


def _now() -> datetime:
    return datetime.now(UTC)


class FakeUsers:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def add(self, *, handle: str, role: Role, monthly_budget_nano: int | None) -> User:
        user = User(
            id=uuid.uuid4(),
            handle=handle,
            role=role,
            monthly_budget_nano=monthly_budget_nano,
            created_at=_now(),
        )
        self.store.users[user.id] = user
        return user

    async def get(self, user_id: uuid.UUID) -> User | None:
        return self.store.users.get(user_id)

    async def set_budget(self, user_id: uuid.UUID, monthly_budget_nano: int | None) -> User:
        user = replace(self.store.users[user_id], monthly_budget_nano=monthly_budget_nano)
        self.store.users[user_id] = user
        return user

    async def exists_any(self) -> bool:
        return bool(self.store.users)


class FakeTokens:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def add(self, *, user_id: uuid.UUID, digest: str, display_prefix: str) -> None:
        self.store.tokens[digest] = (user_id, None)

    async def revoke_all(self, user_id: uuid.UUID, *, at: datetime) -> int:
        live = [
            d for d, (owner, gone) in self.store.tokens.items() if owner == user_id and not gone
        ]
        for digest in live:
            self.store.tokens[digest] = (user_id, at)
        return len(live)


class FakeModels:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def get_by_alias(self, alias: str) -> Model | None:
        return next((m for m in self.store.models.values() if m.alias == alias), None)

    async def insert(self, spec: ModelSpec) -> Model:
        return self._put(uuid.uuid4(), spec, spec.provider_model or spec.alias)

    async def update(self, model_id: uuid.UUID, spec: ModelSpec) -> Model:
        keep = self.store.models[model_id].provider_model
        return self._put(model_id, spec, spec.provider_model or keep)

    def _put(self, model_id: uuid.UUID, spec: ModelSpec, provider_model: str) -> Model:
        model = Model(
            id=model_id,
            alias=spec.alias,
            provider=spec.provider,
            provider_model=provider_model,
            input_nano_per_mtok=spec.input_nano_per_mtok,
            output_nano_per_mtok=spec.output_nano_per_mtok,
            max_output_tokens=spec.max_output_tokens,
            context_window=spec.context_window,
        )
        self.store.models[model_id] = model
        return model


class FakeAgents:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def get_by_key(self, key: str) -> Agent | None:
        return next((a for a in self.store.agents.values() if a.key == key), None)

    async def get_by_keys(self, keys: Sequence[str]) -> list[Agent]:
        return [a for a in self.store.agents.values() if a.key in keys]

    async def list_enabled(self) -> list[Agent]:
        return [a for a in self.store.agents.values() if a.enabled]

    async def insert(self, spec: AgentSpec, *, model_id: uuid.UUID) -> Agent:
        return self._put(uuid.uuid4(), spec, model_id)

    async def update(self, agent_id: uuid.UUID, spec: AgentSpec, *, model_id: uuid.UUID) -> Agent:
        return self._put(agent_id, spec, model_id)

    def _put(self, agent_id: uuid.UUID, spec: AgentSpec, model_id: uuid.UUID) -> Agent:
        agent = Agent(
            id=agent_id,
            key=spec.key,
            name=spec.name,
            description=spec.description,
            system_prompt=spec.system_prompt,
            model_id=model_id,
            enabled=spec.enabled,
        )
        self.store.agents[agent_id] = agent
        return agent


class FakeSessions:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def add(
        self,
        *,
        owner_id: uuid.UUID,
        title: str,
        default_mode: TurnMode,
        agent_ids: Sequence[uuid.UUID],
    ) -> Session:
        now = _now()
        session = Session(
            id=uuid.uuid4(),
            owner_id=owner_id,
            title=title,
            default_mode=default_mode,
            turn_count=0,
            created_at=now,
            updated_at=now,
            deleted_at=None,
        )
        self.store.sessions[session.id] = session
        self.store.rosters[session.id] = list(agent_ids)
        return session

    async def get(self, session_id: uuid.UUID) -> Session | None:
        return self.store.sessions.get(session_id)

    async def lock(self, session_id: uuid.UUID) -> Session | None:
        return self.store.sessions.get(session_id)  # one task: nothing runs in between

    async def update(
        self, session_id: uuid.UUID, *, title: str | None, default_mode: TurnMode | None
    ) -> Session:
        current = self.store.sessions[session_id]
        session = replace(
            current,
            title=title if title is not None else current.title,
            default_mode=default_mode or current.default_mode,
            updated_at=_now(),
        )
        self.store.sessions[session_id] = session
        return session

    async def set_roster(self, session_id: uuid.UUID, agent_ids: Sequence[uuid.UUID]) -> None:
        self.store.rosters[session_id] = list(agent_ids)

    async def soft_delete(self, session_id: uuid.UUID, *, at: datetime) -> None:
        self.store.sessions[session_id] = replace(self.store.sessions[session_id], deleted_at=at)

    async def has_running_turn(self, session_id: uuid.UUID) -> bool:
        return session_id in self.store.running_turns


class FakeUnitOfWork:
    """Stages on a private copy of the store; `commit()` publishes it; exit discards the rest."""

    def __init__(self, store: FakeStore | None = None) -> None:
        self.store = store or FakeStore()
        self.commits = 0

    async def __aenter__(self) -> Self:
        self._staged = copy.deepcopy(self.store)
        self.users = FakeUsers(self._staged)
        self.tokens = FakeTokens(self._staged)
        self.models = FakeModels(self._staged)
        self.agents = FakeAgents(self._staged)
        self.sessions = FakeSessions(self._staged)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        del self._staged  # whatever was not committed is gone

    async def flush(self) -> None:
        handles = [user.handle for user in self._staged.users.values()]
        if len(handles) != len(set(handles)):
            raise Conflict("that handle is taken")

    async def commit(self) -> None:
        await self.flush()
        self.commits += 1
        self.store.__dict__.update(copy.deepcopy(self._staged).__dict__)
