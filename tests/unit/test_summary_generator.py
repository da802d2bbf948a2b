"""Summary stage 1 (generation): the model's strict `{"summary_text": ...}`, the deterministic
digest it falls back to, the attempts kept for metering, and the F52 warning line."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid

import pytest

from domain.enums import CallKind, TokenSource
from domain.llm import (
    Attempt,
    LLMCallError,
    LLMErrorCode,
    TokenUsage,
)
from domain.records import Model
from domain.structured import MAX_REASON_CHARS
from domain.summaries import generator
from domain.turns.context import PastTurn
from tests.fakes.fake_gateway import CompletionGateway

PARSING_LOGGER = "pantheon.llm.parsing"
SECRET = "SECRET-RAW-OUTPUT-5b21"
USER_SECRET = "USER-PRIVATE-TEXT-93ac"

SUMMARIZER = Model(
    id=uuid.uuid4(),
    alias="summarizer-mini",
    provider="fake",
    provider_model="summarizer-vendor-id",
    input_nano_per_mtok=150_000_000,
    output_nano_per_mtok=600_000_000,
    max_output_tokens=1024,
    context_window=128_000,
)
TURNS = (
    PastTurn(index=1, user_message="plan the launch", assistant_output="Qwen: ship on May 2"),
    PastTurn(index=2, user_message="who owns QA?", assistant_output="Writer: Dana owns QA"),
)


def attempt(number: int, *, ok: bool) -> Attempt:
    return Attempt(
        number=number,
        reached_provider=True,
        may_be_billed=True,
        succeeded=ok,
        error_code=None if ok else LLMErrorCode.PROVIDER_UNAVAILABLE,
        usage=TokenUsage(prompt_tokens=50, completion_tokens=7, source=TokenSource.PROVIDER),
        latency_ms=5,
    )


ATTEMPTS = (attempt(1, ok=False), attempt(2, ok=True))


def answering(*outcomes: str | LLMCallError) -> CompletionGateway:
    """The LLM port answering these outcomes in order, each success reporting ATTEMPTS."""
    return CompletionGateway(*outcomes, attempts=ATTEMPTS)


def above_debug(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno > logging.DEBUG]


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- the model's answer ---------------------------------------------------------------------------


async def test_a_valid_answer_is_the_summary_text() -> None:
    gateway = answering('{"summary_text": "  Launch May 2; Dana owns QA.  ", "extra": 1}')

    result = await generator.generate(gateway, "Earlier: kickoff done.", TURNS, SUMMARIZER)

    assert result.text == "Launch May 2; Dana owns QA."
    assert result.used_fallback is False
    assert result.fallback_reason is None
    assert result.attempts == ATTEMPTS


async def test_the_request_carries_the_previous_summary_and_every_turn() -> None:
    gateway = answering('{"summary_text": "ok"}')

    await generator.generate(gateway, "Earlier: kickoff done.", TURNS, SUMMARIZER)

    [request] = gateway.requests
    assert request.call_kind is CallKind.SUMMARY_GENERATION
    assert request.model == "summarizer-vendor-id"
    assert request.provider == "fake"
    assert request.json_output is True
    assert request.max_output_tokens == SUMMARIZER.max_output_tokens
    system, user = request.messages
    assert (system.role, user.role) == ("system", "user")
    assert "summary_text" in system.content
    document = json.loads(user.content)
    assert document["previous_summary"] == "Earlier: kickoff done."
    assert document["turns"] == [
        {"index": 1, "user": "plan the launch", "agents": "Qwen: ship on May 2"},
        {"index": 2, "user": "who owns QA?", "agents": "Writer: Dana owns QA"},
    ]


async def test_a_first_summary_has_no_previous_summary() -> None:
    gateway = answering('{"summary_text": "ok"}')

    await generator.generate(gateway, None, TURNS, SUMMARIZER)

    assert json.loads(gateway.requests[0].messages[1].content)["previous_summary"] is None


async def test_a_valid_answer_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    await generator.generate(answering('{"summary_text": "fine"}'), None, TURNS, SUMMARIZER)

    assert above_debug(caplog) == []


# --- the fallback ---------------------------------------------------------------------------------

INVALID = [
    pytest.param("not json", "json_invalid", id="not-json"),
    pytest.param("", "json_invalid", id="empty-output"),
    pytest.param('```json\n{"summary_text": "x"}\n```', "json_invalid", id="fenced"),
    pytest.param('{"summary_text": "cut', "json_invalid", id="truncated"),
    pytest.param('["a summary"]', "model_type", id="a-list"),
    pytest.param('"a summary"', "model_type", id="a-string"),
    pytest.param("{}", "missing", id="missing-key"),
    pytest.param('{"summary": "wrong key"}', "missing", id="other-key"),
    pytest.param('{"summary_text": 5}', "string_type", id="a-number"),
    pytest.param('{"summary_text": null}', "string_type", id="null"),
    pytest.param('{"summary_text": ["a", "b"]}', "string_type", id="a-list-of-text"),
    pytest.param('{"summary_text": {"text": "x"}}', "string_type", id="an-object"),
    pytest.param('{"summary_text": ""}', "value_error", id="empty-text"),
    pytest.param('{"summary_text": "  \\n\\t "}', "value_error", id="blank-text"),
]


@pytest.mark.parametrize(("raw", "kind"), INVALID)
async def test_anything_else_takes_the_digest_and_keeps_the_attempts(raw: str, kind: str) -> None:
    result = await generator.generate(answering(raw), "Before.", TURNS, SUMMARIZER)

    assert result.used_fallback is True
    assert result.text == generator.digest("Before.", TURNS)
    assert result.attempts == ATTEMPTS  # the call was made: metering still sees it
    assert result.fallback_reason is not None
    assert kind in result.fallback_reason
    assert len(result.fallback_reason) <= MAX_REASON_CHARS


async def test_a_failed_call_takes_the_digest_and_keeps_its_attempts() -> None:
    error = LLMCallError(
        LLMErrorCode.PROVIDER_UNAVAILABLE, "HTTP 500", attempts=(attempt(1, ok=False),) * 3
    )

    result = await generator.generate(CompletionGateway(error), None, TURNS, SUMMARIZER)

    assert result.used_fallback is True
    assert result.text == generator.digest(None, TURNS)
    assert result.attempts == error.attempts
    assert result.fallback_reason is not None
    assert "PROVIDER_UNAVAILABLE" in result.fallback_reason


# --- the deterministic digest ---------------------------------------------------------------------


def test_the_digest_is_deterministic() -> None:
    first = generator.digest("Before.", TURNS)
    again = generator.digest("Before.", tuple(dataclasses.replace(t) for t in TURNS))

    assert first == again
    assert first != generator.digest("Other before.", TURNS)
    assert first != generator.digest("Before.", TURNS[:1])


def test_the_digest_starts_from_the_previous_summary_and_names_each_turn() -> None:
    text = generator.digest("Kickoff done.", TURNS)

    lines = text.splitlines()
    assert lines[0] == "Kickoff done."
    assert lines[1].startswith("Turn 1:")
    assert "plan the launch" in lines[1]
    assert "ship on May 2" in lines[1]
    assert lines[2].startswith("Turn 2:")
    assert "Dana owns QA" in lines[2]
    assert len(lines) == 3


@pytest.mark.parametrize("previous", [None, "", "   \n "])
def test_without_a_previous_summary_the_digest_is_only_the_turns(previous: str | None) -> None:
    lines = generator.digest(previous, TURNS).splitlines()

    assert [line.split(":")[0] for line in lines] == ["Turn 1", "Turn 2"]


def test_each_turn_of_the_digest_is_one_trimmed_line() -> None:
    long_turn = PastTurn(index=3, user_message="a\nb " * 400, assistant_output="Qwen: " + "z" * 900)

    [line] = generator.digest(None, (long_turn,)).splitlines()

    assert line.startswith("Turn 3:")
    assert len(line) <= generator.DIGEST_CHARS_PER_TURN


def test_a_chain_of_digests_stays_bounded() -> None:
    # A summarizer that never answers right must not grow the memory with the session: each
    # digest starts from the previous one, so without a bound it would grow by a block a time.
    text: str | None = None
    sizes = []
    for block in range(60):
        turns = tuple(
            PastTurn(
                index=block * 8 + n,
                user_message=f"question {block}-{n} " + "q" * 200,
                assistant_output=f"Qwen: answer {block}-{n} " + "a" * 200,
            )
            for n in range(1, 9)
        )
        text = generator.digest(text, turns)
        sizes.append(len(text))

    assert max(sizes) <= generator.DIGEST_MAX_CHARS
    assert "Turn 480:" in text  # the newest turns are always kept
    assert "Turn 1:" not in text  # the oldest were dropped


# --- F52: the warning line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(f"Sure! {SECRET}", id="not-json"),
        pytest.param(f'{{"summary_text": ["{SECRET}"]}}', id="wrong-type"),
        pytest.param(f'{{"other": "{SECRET}"}}', id="missing-key"),
        pytest.param('{"summary_text": "   "}', id="blank"),
        pytest.param('{"summary_text": "' + SECRET * 3_000, id="huge-truncated"),
    ],
)
async def test_a_fallback_logs_exactly_one_short_warning_naming_the_parser(
    caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    caplog.set_level(logging.INFO)
    turns = (PastTurn(index=1, user_message=USER_SECRET, assistant_output="Qwen: ok"),)

    result = await generator.generate(answering(raw), None, turns, SUMMARIZER)

    assert result.used_fallback is True
    [record] = warnings(caplog)
    line = record.getMessage()
    assert record.levelno == logging.WARNING
    assert line.startswith(generator.PARSER)
    assert len(line) <= MAX_REASON_CHARS + 50
    assert record.exc_info is None
    for logged in above_debug(caplog):
        assert SECRET not in logged.getMessage()
        assert USER_SECRET not in logged.getMessage()


async def test_a_failed_call_logs_exactly_one_short_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    error = LLMCallError(
        LLMErrorCode.PROVIDER_TIMEOUT, "timed out", attempts=(attempt(1, ok=False),)
    )
    turns = (PastTurn(index=1, user_message=USER_SECRET, assistant_output="Qwen: ok"),)

    await generator.generate(CompletionGateway(error), None, turns, SUMMARIZER)

    [record] = warnings(caplog)
    assert record.getMessage().startswith(generator.PARSER)
    assert "PROVIDER_TIMEOUT" in record.getMessage()
    assert len(record.getMessage()) <= MAX_REASON_CHARS + 50
    assert all(USER_SECRET not in r.getMessage() for r in caplog.records)


async def test_the_raw_output_and_full_validation_text_appear_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=PARSING_LOGGER)

    await generator.generate(
        answering(f'{{"summary_text": ["{SECRET}"]}}'), None, TURNS, SUMMARIZER
    )

    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(SECRET in r.getMessage() for r in debug)
    assert any("validation error" in r.getMessage().lower() for r in debug)
    assert all(SECRET not in r.getMessage() for r in above_debug(caplog))
