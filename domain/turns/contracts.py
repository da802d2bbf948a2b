"""Frozen contracts between the turn layers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from domain.enums import TurnMode


@dataclass(frozen=True, slots=True, kw_only=True)
class RosterAgent:
    """One roster entry with what planning and calling need to know about the agent."""

    id: uuid.UUID
    key: str
    name: str
    description: str
    system_prompt: str
    enabled: bool
    model_alias: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingDecision:
    mode: TurnMode
    selected_agent_keys: tuple[str, ...]
    ignored_tags: tuple[str, ...] = ()
    used_fallback: bool = False
    fallback_reason: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "mode": self.mode.value,
            "selected_agent_keys": list(self.selected_agent_keys),
            "ignored_tags": list(self.ignored_tags),
            "used_fallback": self.used_fallback,
            "fallback_reason": self.fallback_reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RoutingDecision:
        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key)
            return tuple(str(item) for item in value) if isinstance(value, list) else ()

        reason = data.get("fallback_reason")
        return cls(
            mode=TurnMode(str(data["mode"])),
            selected_agent_keys=strings("selected_agent_keys"),
            ignored_tags=strings("ignored_tags"),
            used_fallback=bool(data.get("used_fallback", False)),
            fallback_reason=str(reason) if reason is not None else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextAudit:
    """What the agents of a turn were shown (F49: every dispatched agent's model alias)."""

    model_aliases: tuple[str, ...]
    summary_id: uuid.UUID | None
    history_turns_included: int
    estimated_prompt_tokens: int

    def to_json(self) -> dict[str, object]:
        return {
            "model_aliases": list(self.model_aliases),
            "summary_id": str(self.summary_id) if self.summary_id else None,
            "history_turns_included": self.history_turns_included,
            "estimated_prompt_tokens": self.estimated_prompt_tokens,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ContextAudit:
        aliases = data.get("model_aliases")
        summary = data.get("summary_id")
        history = data.get("history_turns_included", 0)
        tokens = data.get("estimated_prompt_tokens", 0)
        return cls(
            model_aliases=tuple(str(a) for a in aliases) if isinstance(aliases, list) else (),
            summary_id=uuid.UUID(str(summary)) if summary else None,
            history_turns_included=int(history) if isinstance(history, int) else 0,
            estimated_prompt_tokens=int(tokens) if isinstance(tokens, int) else 0,
        )


EMPTY_AUDIT = ContextAudit(
    model_aliases=(), summary_id=None, history_turns_included=0, estimated_prompt_tokens=0
)
