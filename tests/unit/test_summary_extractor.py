"""Summary stage 2 (extraction): the structure's stable shape, missing keys defaulting to empty
lists silently, the empty-structure fallback with one short warning (F52), attempts kept."""

from __future__ import annotations

import logging
import uuid
from typing import Any

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
from domain.summaries import extractor
from domain.summaries.contracts import STRUCTURE_KEYS, SummaryStructure
from tests.fakes.fake_gateway import CompletionGateway

PARSING_LOGGER = "pantheon.llm.parsing"
SECRET = "SECRET-RAW-OUTPUT-c0de"
SUMMARY_SECRET = "SUMMARY-TEXT-FROM-USER-77f1"

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
ATTEMPTS = (
    Attempt(
        number=1,
        reached_provider=True,
        may_be_billed=True,
        succeeded=True,
        error_code=None,
        usage=TokenUsage(prompt_tokens=80, completion_tokens=20, source=TokenSource.PROVIDER),
        latency_ms=5,
    ),
)
FULL = (
    '{"key_points": ["launch May 2"], "decisions": ["ship beta"], '
    '"action_items": ["Dana: QA plan"], "open_questions": ["pricing?"]}'
)


def answering(*outcomes: str | LLMCallError) -> CompletionGateway:
    """The LLM port answering these outcomes in order, each success reporting ATTEMPTS."""
    return CompletionGateway(*outcomes, attempts=ATTEMPTS)


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def assert_contract(shape: dict[str, Any]) -> None:
    assert list(shape) == list(STRUCTURE_KEYS)
    for value in shape.values():
        assert isinstance(value, list)
        assert all(isinstance(item, str) for item in value)


# --- the model's answer ---------------------------------------------------------------------------


async def test_a_valid_answer_is_the_structure() -> None:
    gateway = answering(FULL)

    result = await extractor.extract(gateway, "Launch May 2.", SUMMARIZER)

    assert result.used_fallback is False
    assert result.fallback_reason is None
    assert result.attempts == ATTEMPTS
    assert result.structure.to_json() == {
        "key_points": ["launch May 2"],
        "decisions": ["ship beta"],
        "action_items": ["Dana: QA plan"],
        "open_questions": ["pricing?"],
    }


async def test_the_request_sends_the_summary_text() -> None:
    gateway = answering(FULL)

    await extractor.extract(gateway, "Launch May 2; Dana owns QA.", SUMMARIZER)

    [request] = gateway.requests
    assert request.call_kind is CallKind.SUMMARY_EXTRACTION
    assert request.model == "summarizer-vendor-id"
    assert request.json_output is True
    system, user = request.messages
    assert system.role == "system"
    assert all(key in system.content for key in STRUCTURE_KEYS)
    assert (user.role, user.content) == ("user", "Launch May 2; Dana owns QA.")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("{}", {}, id="no-keys"),
        pytest.param('{"decisions": ["go"]}', {"decisions": ["go"]}, id="one-key"),
        pytest.param(
            '{"key_points": [], "open_questions": ["when?"], "mood": "good"}',
            {"open_questions": ["when?"]},
            id="extra-key-ignored",
        ),
    ],
)
async def test_missing_keys_default_to_empty_lists_silently(
    caplog: pytest.LogCaptureFixture, raw: str, expected: dict[str, list[str]]
) -> None:
    caplog.set_level(logging.DEBUG)

    result = await extractor.extract(answering(raw), "text", SUMMARIZER)

    assert result.used_fallback is False
    assert result.fallback_reason is None
    assert result.structure.to_json() == {key: expected.get(key, []) for key in STRUCTURE_KEYS}
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []


# --- the fallback ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        pytest.param("not json", "json_invalid", id="not-json"),
        pytest.param("", "json_invalid", id="empty-output"),
        pytest.param(f"```json\n{FULL}\n```", "json_invalid", id="fenced"),
        pytest.param('["launch"]', "model_type", id="a-list"),
        pytest.param("null", "model_type", id="null"),
        pytest.param('{"key_points": "x"}', "list_type", id="a-string-not-a-list"),
        pytest.param('{"decisions": null}', "list_type", id="null-list"),
        pytest.param('{"action_items": [1, 2]}', "string_type", id="numbers"),
        pytest.param('{"open_questions": [["nested"]]}', "string_type", id="nested-list"),
        pytest.param('{"key_points": [{"text": "x"}]}', "string_type", id="objects"),
    ],
)
async def test_invalid_output_or_wrong_types_give_the_empty_structure(raw: str, kind: str) -> None:
    result = await extractor.extract(answering(raw), "text", SUMMARIZER)

    assert result.used_fallback is True
    assert result.structure == SummaryStructure()
    assert result.attempts == ATTEMPTS
    assert result.fallback_reason is not None
    assert kind in result.fallback_reason
    assert len(result.fallback_reason) <= MAX_REASON_CHARS


async def test_a_failed_call_gives_the_empty_structure_and_keeps_its_attempts() -> None:
    failed = Attempt(
        number=1,
        reached_provider=True,
        may_be_billed=False,
        succeeded=False,
        error_code=LLMErrorCode.PROVIDER_RATE_LIMITED,
        usage=TokenUsage(prompt_tokens=80, completion_tokens=0, source=TokenSource.ESTIMATED),
        latency_ms=3,
    )
    error = LLMCallError(LLMErrorCode.PROVIDER_RATE_LIMITED, "429", attempts=(failed, failed))

    result = await extractor.extract(CompletionGateway(error), "text", SUMMARIZER)

    assert result.used_fallback is True
    assert result.structure == SummaryStructure()
    assert result.attempts == (failed, failed)
    assert result.fallback_reason is not None
    assert "PROVIDER_RATE_LIMITED" in result.fallback_reason


# --- F52 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(f"{SECRET} not json", id="not-json"),
        pytest.param(f'{{"key_points": "{SECRET}"}}', id="wrong-type"),
        pytest.param(f'{{"decisions": [{{"{SECRET}": 1}}]}}', id="nested"),
        pytest.param('{"key_points": ["' + SECRET * 3_000, id="huge-truncated"),
    ],
)
async def test_a_fallback_logs_exactly_one_short_warning_naming_the_parser(
    caplog: pytest.LogCaptureFixture, raw: str
) -> None:
    caplog.set_level(logging.INFO)

    await extractor.extract(answering(raw), f"summary about {SUMMARY_SECRET}", SUMMARIZER)

    [record] = warnings(caplog)
    line = record.getMessage()
    assert line.startswith(extractor.PARSER)
    assert len(line) <= MAX_REASON_CHARS + 50
    assert record.exc_info is None
    for logged in caplog.records:
        assert SECRET not in logged.getMessage()
        assert SUMMARY_SECRET not in logged.getMessage()


async def test_a_failed_call_logs_exactly_one_short_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    error = LLMCallError(LLMErrorCode.PROVIDER_TIMEOUT, "timed out")

    await extractor.extract(CompletionGateway(error), SUMMARY_SECRET, SUMMARIZER)

    [record] = warnings(caplog)
    assert record.getMessage().startswith(extractor.PARSER)
    assert "PROVIDER_TIMEOUT" in record.getMessage()
    assert SUMMARY_SECRET not in record.getMessage()


async def test_the_raw_output_appears_only_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=PARSING_LOGGER)

    await extractor.extract(answering(f'{{"key_points": "{SECRET}"}}'), "t", SUMMARIZER)

    assert any(SECRET in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)
    assert all(SECRET not in r.getMessage() for r in warnings(caplog))


# --- the structure contract -----------------------------------------------------------------------

ANSWERS = [
    FULL,
    "{}",
    '{"key_points": ["a", "b"], "unknown": {"deep": [1]}}',
    '{"key_points": "x"}',
    '{"decisions": [1, "two"]}',
    '{"action_items": null}',
    "[]",
    "42",
    '"text"',
    "not json at all",
    "",
    '{"open_questions": ["é", "多语言"], "key_points": []}',
    '{"key_points": ["' + "long " * 500 + '"]}',
]


@pytest.mark.parametrize("raw", ANSWERS)
async def test_the_structure_always_has_the_four_keys_with_lists_of_strings(raw: str) -> None:
    result = await extractor.extract(answering(raw), "text", SUMMARIZER)

    shape = result.structure.to_json()
    assert_contract(shape)
    assert SummaryStructure.from_json(shape) == result.structure  # stored and read back unchanged


@pytest.mark.parametrize(
    "stored",
    [
        None,
        [],
        "key_points",
        {},
        {"key_points": "abc"},
        {"key_points": None, "decisions": 3},
        {"decisions": ["ok", 1, None, ["x"]]},
        {"action_items": {"a": "b"}},
        {"open_questions": ["q"], "extra": ["e"]},
    ],
)
def test_reading_any_stored_structure_back_keeps_the_contract(stored: object) -> None:
    structure = SummaryStructure.from_json(stored)

    shape = structure.to_json()
    assert_contract(shape)
    # only real lists of strings survive; anything else reads as an empty list
    for key in STRUCTURE_KEYS:
        raw = stored.get(key) if isinstance(stored, dict) else None
        kept = [item for item in raw if isinstance(item, str)] if isinstance(raw, list) else []
        assert shape[key] == kept
