"""ORCHESTRATOR routing: the manager's strict JSON, its deterministic fallback and the F52
warning line (one WARNING, short, naming parser + location + error type, never the raw output)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence

import pytest

from domain.enums import CallKind, TokenSource, TurnMode
from domain.llm import (
    Attempt,
    LLMCallError,
    LLMErrorCode,
    TokenUsage,
)
from domain.records import Model
from domain.structured import MAX_REASON_CHARS, fallback
from domain.turns import routing
from domain.turns.contracts import RosterAgent, RoutingDecision
from tests.fakes.fake_gateway import CompletionGateway

PARSING_LOGGER = "pantheon.llm.parsing"
SECRET = "SECRET-RAW-OUTPUT-7f3a"


def agent(key: str, *, enabled: bool = True) -> RosterAgent:
    return RosterAgent(
        id=uuid.uuid4(),
        key=key,
        name=key.title(),
        description=f"{key} does things",
        system_prompt=f"You are {key}.",
        enabled=enabled,
        model_alias=f"{key}-model",
    )


ROSTER = (
    agent("qwen"),
    agent("deepseek"),
    agent("writer"),
    agent("researcher"),
    agent("sleeper", enabled=False),
)
MANAGER = Model(
    id=uuid.uuid4(),
    alias="manager-mini",
    provider="fake",
    provider_model="gpt-mini-vendor-id",
    input_nano_per_mtok=150_000_000,
    output_nano_per_mtok=600_000_000,
    max_output_tokens=1024,
    context_window=128_000,
)


def decide(raw: str, cap: int = 3, roster: Sequence[RosterAgent] = ROSTER) -> RoutingDecision:
    return routing.decide(raw, roster, cap=cap)


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- decide: the accepted shapes ------------------------------------------------------------------


def test_a_list_of_keys_is_taken_in_the_managers_order() -> None:
    decision = decide('{"selected_agent_keys": ["researcher", "writer"]}')

    assert decision.mode is TurnMode.ORCHESTRATOR
    assert decision.selected_agent_keys == ("researcher", "writer")
    assert decision.used_fallback is False
    assert decision.fallback_reason is None


def test_the_legacy_single_key_is_accepted() -> None:
    decision = decide('{"selected_agent_key": "writer"}')

    assert decision.selected_agent_keys == ("writer",)
    assert decision.used_fallback is False


def test_extra_fields_are_ignored() -> None:
    decision = decide('{"selected_agent_keys": ["deepseek"], "why": "maths"}')

    assert decision.selected_agent_keys == ("deepseek",)


def test_unknown_and_disabled_keys_are_dropped() -> None:
    decision = decide('{"selected_agent_keys": ["ghost", "writer", "sleeper", "qwen"]}')

    assert decision.selected_agent_keys == ("writer", "qwen")
    assert decision.used_fallback is False


def test_duplicates_are_removed_keeping_the_first() -> None:
    decision = decide('{"selected_agent_keys": ["writer", "qwen", "writer", "qwen"]}')

    assert decision.selected_agent_keys == ("writer", "qwen")


def test_the_list_is_capped_after_dropping_and_deduplicating() -> None:
    raw = '{"selected_agent_keys": ["ghost", "writer", "writer", "qwen", "deepseek", "researcher"]}'

    assert decide(raw, cap=2).selected_agent_keys == ("writer", "qwen")
    assert decide(raw, cap=3).selected_agent_keys == ("writer", "qwen", "deepseek")


def test_at_signs_case_and_spaces_are_normalised() -> None:
    decision = decide('{"selected_agent_keys": ["@Writer", " QWEN ", "@@deepseek"]}')

    assert decision.selected_agent_keys == ("writer", "qwen", "deepseek")


def test_a_valid_answer_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=PARSING_LOGGER)

    decide('{"selected_agent_keys": ["writer"]}')

    assert caplog.records == []


# --- decide: the fallback -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("", id="empty-output"),
        pytest.param('```json\n{"selected_agent_keys": ["writer"]}\n```', id="fenced"),
        pytest.param('["writer"]', id="a-list"),
        pytest.param('"writer"', id="a-string"),
        pytest.param('{"selected_agent_keys": "writer"}', id="keys-not-a-list"),
        pytest.param('{"selected_agent_keys": [1, 2]}', id="keys-not-strings"),
        pytest.param('{"selected_agent_key": ["writer"]}', id="legacy-not-a-string"),
        pytest.param('{"selected_agent_keys": []}', id="empty-list"),
        pytest.param('{"selected_agent_keys": ["ghost", "sleeper"]}', id="no-valid-key"),
        pytest.param("{}", id="no-field"),
        pytest.param('{"selected_agent_keys": null}', id="null"),
    ],
)
def test_anything_else_falls_back_to_the_default_agent(raw: str) -> None:
    decision = decide(raw)

    assert decision.selected_agent_keys == ("qwen",)
    assert decision.used_fallback is True
    assert decision.fallback_reason
    assert len(decision.fallback_reason) <= MAX_REASON_CHARS
    assert decision.mode is TurnMode.ORCHESTRATOR


def test_the_fallback_is_the_first_enabled_agent() -> None:
    roster = (agent("qwen", enabled=False), agent("writer"), agent("deepseek"))

    assert decide("not json", roster=roster).selected_agent_keys == ("writer",)


def test_the_fallback_reason_names_where_and_what_went_wrong() -> None:
    decision = decide('{"selected_agent_keys": "writer"}')

    assert decision.fallback_reason is not None
    assert "selected_agent_keys" in decision.fallback_reason
    assert "list_type" in decision.fallback_reason


# --- the F52 warning line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "where", "kind"),
    [
        pytest.param(f"sure! {SECRET}", "(root)", "json_invalid", id="not-json"),
        pytest.param(
            f'{{"selected_agent_keys": "{SECRET}"}}',
            "selected_agent_keys",
            "list_type",
            id="wrong-type",
        ),
        pytest.param(
            f'{{"selected_agent_keys": ["ok", {{"{SECRET}": 1}}]}}',
            "selected_agent_keys.1",
            "string_type",
            id="nested",
        ),
        pytest.param(f'["{SECRET}"]', "(root)", "model_type", id="not-an-object"),
    ],
)
def test_a_parse_failure_logs_one_short_warning_without_the_raw_output(
    caplog: pytest.LogCaptureFixture, raw: str, where: str, kind: str
) -> None:
    caplog.set_level(logging.WARNING, logger=PARSING_LOGGER)

    decide(raw)

    [record] = warnings(caplog)
    line = record.getMessage()
    assert record.levelno == logging.WARNING
    assert line.startswith(routing.PARSER)
    assert where in line
    assert kind in line
    assert SECRET not in line
    assert len(line) <= MAX_REASON_CHARS + 50
    assert record.exc_info is None  # no traceback (and its validation text) attached


def test_a_huge_invalid_output_still_logs_a_short_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=PARSING_LOGGER)

    decide('{"selected_agent_keys": ["' + SECRET * 2_000)

    [record] = warnings(caplog)
    assert len(record.getMessage()) <= MAX_REASON_CHARS + 50
    assert SECRET not in record.getMessage()


def test_no_valid_key_logs_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=PARSING_LOGGER)

    decide(f'{{"selected_agent_keys": ["{SECRET}"]}}')

    [record] = warnings(caplog)
    assert routing.PARSER in record.getMessage()
    assert SECRET not in record.getMessage()


def test_the_full_validation_text_and_raw_output_appear_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=PARSING_LOGGER)

    decide(f'{{"selected_agent_keys": "{SECRET}"}}')

    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(SECRET in r.getMessage() for r in debug)
    assert any("validation error" in r.getMessage().lower() for r in debug)
    assert all(SECRET not in r.getMessage() for r in warnings(caplog))


def test_nothing_is_logged_at_debug_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=PARSING_LOGGER)

    decide(f"{SECRET}")

    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 1


def test_a_long_fallback_reason_is_trimmed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=PARSING_LOGGER)

    reason = fallback("some parser", "word\n" * 500)

    assert len(reason) <= MAX_REASON_CHARS
    assert "\n" not in reason
    [record] = warnings(caplog)
    assert len(record.getMessage()) <= MAX_REASON_CHARS + 50


# --- route: the manager call through the LLM port -------------------------------------------------


def attempt(number: int, *, ok: bool, reached: bool = True) -> Attempt:
    return Attempt(
        number=number,
        reached_provider=reached,
        may_be_billed=ok,
        succeeded=ok,
        error_code=None if ok else LLMErrorCode.PROVIDER_UNAVAILABLE,
        usage=TokenUsage(
            prompt_tokens=40, completion_tokens=9 if ok else 0, source=TokenSource.PROVIDER
        ),
        latency_ms=12,
    )


ATTEMPTS = (attempt(1, ok=False), attempt(2, ok=True))  # a retried call: both metered


async def test_route_takes_the_managers_answer_and_returns_its_attempts() -> None:
    gateway = CompletionGateway(
        '{"selected_agent_keys": ["researcher", "writer"]}', attempts=ATTEMPTS
    )

    outcome = await routing.route(gateway, "compare X and Y", ROSTER, MANAGER, cap=3)

    assert outcome.decision.selected_agent_keys == ("researcher", "writer")
    assert outcome.decision.used_fallback is False
    assert [a.number for a in outcome.attempts] == [1, 2]


async def test_the_manager_request_carries_the_roster_document() -> None:
    gateway = CompletionGateway('{"selected_agent_key": "qwen"}', attempts=ATTEMPTS)

    await routing.route(gateway, '@writer what is up? "quoted"', ROSTER, MANAGER, cap=2)

    [request] = gateway.requests
    assert request.call_kind is CallKind.MANAGER_ROUTING
    assert request.provider == "fake"
    assert request.model == "gpt-mini-vendor-id"
    assert request.json_output is True
    assert request.max_output_tokens <= MANAGER.max_output_tokens
    assert request.messages[0].role == "system"
    assert request.messages[-1].role == "user"
    document = json.loads(request.messages[-1].content)
    assert set(document) == {"roster", "message", "max_agents"}
    assert document["message"] == '@writer what is up? "quoted"'
    assert document["max_agents"] == 2
    assert document["roster"] == [  # enabled agents only, roster order
        {"key": a.key, "name": a.name, "description": a.description} for a in ROSTER if a.enabled
    ]


async def test_a_failing_manager_call_falls_back_and_keeps_its_attempts_for_metering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=PARSING_LOGGER)
    attempts = (attempt(1, ok=False), attempt(2, ok=False), attempt(3, ok=False))
    error = LLMCallError(
        LLMErrorCode.PROVIDER_UNAVAILABLE, "server error: HTTP 500", attempts=attempts
    )
    gateway = CompletionGateway(error)

    outcome = await routing.route(gateway, "hi", ROSTER, MANAGER, cap=3)

    assert outcome.decision.selected_agent_keys == ("qwen",)
    assert outcome.decision.used_fallback is True
    assert outcome.decision.fallback_reason is not None
    assert "PROVIDER_UNAVAILABLE" in outcome.decision.fallback_reason
    assert outcome.attempts == attempts
    [record] = warnings(caplog)
    assert routing.PARSER in record.getMessage()


async def test_a_manager_answering_not_json_falls_back_with_the_call_attempts() -> None:
    gateway = CompletionGateway("not json", attempts=ATTEMPTS)

    outcome = await routing.route(gateway, "hi", ROSTER, MANAGER, cap=3)

    assert outcome.decision.used_fallback is True
    assert outcome.decision.selected_agent_keys == ("qwen",)
    assert len(outcome.attempts) == 2
