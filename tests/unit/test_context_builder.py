"""What an agent is shown: persona, summary, history (oldest first, trimmed to fit), this turn's
earlier replies, and the user's message last and verbatim."""

from __future__ import annotations

import uuid

from domain.enums import CallKind
from domain.llm import estimate_prompt_tokens
from domain.records import Model
from domain.turns.context import (
    EarlierReply,
    PastTurn,
    SessionMemory,
    SummaryMemory,
    build_prompt,
)
from domain.turns.contracts import RosterAgent

WRITER = RosterAgent(
    id=uuid.uuid4(),
    key="writer",
    name="Writer",
    description="writes",
    system_prompt="You are Writer, an editor.",
    enabled=True,
    model_alias="writer-large",
)


def model(*, context_window: int = 128_000, max_output_tokens: int = 4096) -> Model:
    return Model(
        id=uuid.uuid4(),
        alias="writer-large",
        provider="fake",
        provider_model="gpt-vendor",
        input_nano_per_mtok=2_500_000_000,
        output_nano_per_mtok=10_000_000_000,
        max_output_tokens=max_output_tokens,
        context_window=context_window,
    )


def past(index: int, size: int = 40) -> PastTurn:
    return PastTurn(
        index=index,
        user_message=f"question {index} " + "q" * size,
        assistant_output=f"Writer: answer {index} " + "a" * size,
    )


NO_MEMORY = SessionMemory(summary=None, turns=())
MESSAGE = "@writer please polish this, @nobody: «Ünïcode» text"


def test_the_persona_comes_first_and_the_message_last_and_verbatim() -> None:
    prompt = build_prompt(
        agent=WRITER, model=model(), memory=NO_MEMORY, message=MESSAGE, earlier=[]
    )

    messages = prompt.request.messages
    assert messages[0].role == "system"
    assert WRITER.system_prompt in messages[0].content
    assert "@writer" in messages[0].content
    assert messages[-1].role == "user"
    assert messages[-1].content == MESSAGE
    assert len(messages) == 2


def test_the_request_is_an_agent_call_on_the_agents_model() -> None:
    chosen = model(max_output_tokens=777)
    prompt = build_prompt(agent=WRITER, model=chosen, memory=NO_MEMORY, message="hi", earlier=[])

    assert prompt.request.call_kind is CallKind.AGENT_RESPONSE
    assert prompt.request.provider == "fake"
    assert prompt.request.model == "gpt-vendor"
    assert prompt.request.max_output_tokens == 777
    assert prompt.request.persona == "Writer"


def test_the_summary_is_a_system_message_after_the_persona() -> None:
    summary = SummaryMemory(id=uuid.uuid4(), text="They agreed on plan B.", covers_through_turn=8)
    memory = SessionMemory(summary=summary, turns=(past(9), past(10)))

    prompt = build_prompt(agent=WRITER, model=model(), memory=memory, message="next?", earlier=[])

    messages = prompt.request.messages
    assert messages[1].role == "system"
    assert "They agreed on plan B." in messages[1].content
    assert "8" in messages[1].content
    assert prompt.summary_id == summary.id
    assert [m.role for m in messages[2:]] == ["user", "assistant", "user", "assistant", "user"]


def test_history_is_oldest_first_as_user_and_assistant_pairs() -> None:
    memory = SessionMemory(summary=None, turns=(past(1), past(2), past(3)))

    prompt = build_prompt(agent=WRITER, model=model(), memory=memory, message="now", earlier=[])

    history = prompt.request.messages[1:-1]
    assert [m.content for m in history] == [
        text for turn in memory.turns for text in (turn.user_message, turn.assistant_output)
    ]
    assert [m.role for m in history] == ["user", "assistant"] * 3
    assert prompt.history_turns_included == 3
    assert prompt.summary_id is None


def test_earlier_successful_replies_come_just_before_the_message() -> None:
    earlier = [
        EarlierReply(agent_name="Researcher", text="Fact A and fact B."),
        EarlierReply(agent_name="Qwen", text="Quick take."),
    ]
    memory = SessionMemory(summary=None, turns=(past(1),))

    prompt = build_prompt(
        agent=WRITER, model=model(), memory=memory, message=MESSAGE, earlier=earlier
    )

    messages = prompt.request.messages
    assert messages[-1].content == MESSAGE
    replies = messages[-2]
    assert replies.role == "user"
    assert "Researcher: Fact A and fact B." in replies.content
    assert "Qwen: Quick take." in replies.content
    assert replies.content.index("Researcher:") < replies.content.index("Qwen:")
    assert messages[1].content == past(1).user_message  # history stays before this turn


def test_history_is_trimmed_oldest_first_to_fit_the_window_minus_the_output() -> None:
    turns = tuple(past(i, size=400) for i in range(1, 41))  # ~ 210 tokens per turn
    memory = SessionMemory(summary=None, turns=turns)
    small = model(context_window=3_000, max_output_tokens=1_000)

    prompt = build_prompt(agent=WRITER, model=small, memory=memory, message="now", earlier=[])

    kept = prompt.history_turns_included
    assert 0 < kept < len(turns)
    history = prompt.request.messages[1:-1]
    assert len(history) == 2 * kept
    # the newest turns are kept, oldest first, contiguous up to the last one
    assert [m.content for m in history[::2]] == [t.user_message for t in turns[-kept:]]
    limit = small.context_window - small.max_output_tokens
    assert prompt.estimated_prompt_tokens <= limit
    # one more (older) turn would not have fitted
    with_one_more = build_prompt(
        agent=WRITER,
        model=model(context_window=3_000 + 250, max_output_tokens=1_000),
        memory=memory,
        message="now",
        earlier=[],
    )
    assert with_one_more.history_turns_included == kept + 1


def test_the_summary_message_and_earlier_replies_stay_when_history_does_not_fit() -> None:
    summary = SummaryMemory(id=uuid.uuid4(), text="summary", covers_through_turn=3)
    memory = SessionMemory(summary=summary, turns=(past(4, size=4_000),))
    earlier = [EarlierReply(agent_name="Qwen", text="hello")]
    tiny = model(context_window=1_200, max_output_tokens=1_000)

    prompt = build_prompt(agent=WRITER, model=tiny, memory=memory, message="msg", earlier=earlier)

    assert prompt.history_turns_included == 0
    contents = [m.content for m in prompt.request.messages]
    assert "summary" in contents[1]
    assert "Qwen: hello" in contents[-2]
    assert contents[-1] == "msg"


def test_the_estimate_counts_the_whole_prompt() -> None:
    memory = SessionMemory(summary=None, turns=(past(1), past(2)))
    earlier = [EarlierReply(agent_name="Qwen", text="hello there")]

    prompt = build_prompt(
        agent=WRITER, model=model(), memory=memory, message=MESSAGE, earlier=earlier
    )

    assert prompt.estimated_prompt_tokens == estimate_prompt_tokens(prompt.request.messages)
    assert prompt.history_turns_included == 2
