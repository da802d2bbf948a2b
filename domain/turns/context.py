"""What each agent is shown: its persona, the session memory, the message, and the successful
replies of the agents before it in this turn — within its model's context window.

Session memory is the latest summary plus the finished turns after it. When they do not all fit,
the oldest turns are left out first; the summary, the message and this turn's replies always stay.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from domain.enums import CallKind
from domain.llm import (
    MESSAGE_OVERHEAD_TOKENS,
    ChatMessage,
    LLMRequest,
    estimate_prompt_tokens,
    estimate_tokens,
)
from domain.records import Model
from domain.turns.contracts import RosterAgent


@dataclass(frozen=True, slots=True, kw_only=True)
class PastTurn:
    index: int
    user_message: str
    assistant_output: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryMemory:
    id: uuid.UUID
    text: str
    covers_through_turn: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionMemory:
    summary: SummaryMemory | None
    turns: tuple[PastTurn, ...]  # finished turns after the summary with output, oldest first
    finished_since_summary: int = 0  # every finished turn after the summary, output or not


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlierReply:
    agent_name: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentPrompt:
    request: LLMRequest
    history_turns_included: int
    estimated_prompt_tokens: int
    summary_id: uuid.UUID | None


def build_prompt(
    *,
    agent: RosterAgent,
    model: Model,
    memory: SessionMemory,
    message: str,
    earlier: Sequence[EarlierReply],
) -> AgentPrompt:
    head = [ChatMessage(role="system", content=_persona(agent))]
    if memory.summary is not None:
        head.append(
            ChatMessage(
                role="system",
                content=(
                    "Summary of this conversation through turn "
                    f"{memory.summary.covers_through_turn}:\n{memory.summary.text}"
                ),
            )
        )
    tail = [ChatMessage(role="user", content=message)]
    if earlier:  # before the message, so the message is the last thing the model reads
        tail.insert(0, ChatMessage(role="user", content=_earlier_replies(agent, earlier)))
    budget = model.context_window - model.max_output_tokens - estimate_prompt_tokens(head + tail)
    history = _fit_history(memory.turns, budget)
    messages = (*head, *history, *tail)
    return AgentPrompt(
        request=LLMRequest(
            provider=model.provider,
            model=model.provider_model,
            messages=messages,
            max_output_tokens=model.max_output_tokens,
            call_kind=CallKind.AGENT_RESPONSE,
            persona=agent.name,
            agent_key=agent.key,
        ),
        history_turns_included=len(history) // 2,
        estimated_prompt_tokens=estimate_prompt_tokens(messages),
        summary_id=memory.summary.id if memory.summary else None,
    )


def _persona(agent: RosterAgent) -> str:
    return (
        f"{agent.system_prompt}\n\nYou are {agent.name} (@{agent.key}), one of several AI agents "
        "answering the user in turn in a shared chat."
    )


def _earlier_replies(agent: RosterAgent, earlier: Sequence[EarlierReply]) -> str:
    replies = "\n\n".join(f"{reply.agent_name}: {reply.text}" for reply in earlier)
    return (
        "Other agents have already answered the user's next message in this turn:\n\n"
        f"{replies}\n\nAnswer it as {agent.name}: build on them, do not repeat them."
    )


def _fit_history(turns: Sequence[PastTurn], budget: int) -> list[ChatMessage]:
    """The newest turns that fit in `budget` tokens, returned oldest first."""
    kept: list[list[ChatMessage]] = []
    for turn in reversed(turns):
        pair = [
            ChatMessage(role="user", content=turn.user_message),
            ChatMessage(role="assistant", content=turn.assistant_output),
        ]
        cost = sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in pair)
        if cost > budget:
            break
        budget -= cost
        kept.append(pair)
    return [message for pair in reversed(kept) for message in pair]
