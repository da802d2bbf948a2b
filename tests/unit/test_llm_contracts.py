"""The LLM port's contracts: frozen keyword-only dataclasses, the error, and a pure module."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from domain.enums import CallKind, TokenSource
from domain.llm import (
    NO_USAGE,
    Attempt,
    ChatMessage,
    LLMCallError,
    LLMErrorCode,
    LLMRequest,
    LLMResult,
    TextDelta,
    TokenUsage,
)

CONTRACTS = [ChatMessage, LLMRequest, TokenUsage, Attempt, LLMResult, TextDelta]


def _attempt(**overrides: object) -> Attempt:
    values: dict[str, object] = {
        "number": 1,
        "reached_provider": True,
        "may_be_billed": True,
        "succeeded": False,
        "error_code": LLMErrorCode.PROVIDER_TIMEOUT,
        "usage": NO_USAGE,
        "latency_ms": 12,
    }
    values.update(overrides)
    return Attempt(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("contract", CONTRACTS)
def test_contracts_are_frozen_slotted_and_keyword_only(contract: type) -> None:
    params = contract.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    assert "__slots__" in vars(contract)
    assert all(field.kw_only for field in dataclasses.fields(contract))


def test_a_contract_cannot_be_changed_after_creation() -> None:
    message = ChatMessage(role="user", content="hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.content = "changed"  # type: ignore[misc]


def test_positional_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        ChatMessage("user", "hi")  # type: ignore[call-arg]


def test_a_request_has_safe_defaults() -> None:
    request = LLMRequest(
        provider="scripted",
        model="m",
        messages=(ChatMessage(role="user", content="hi"),),
        max_output_tokens=10,
        call_kind=CallKind.AGENT_RESPONSE,
    )
    assert (request.temperature, request.persona, request.json_output) == (None, None, False)


def test_token_usage_totals_prompt_and_completion() -> None:
    usage = TokenUsage(prompt_tokens=7, completion_tokens=3, source=TokenSource.PROVIDER)
    assert usage.total_tokens == 10
    assert NO_USAGE.total_tokens == 0
    assert NO_USAGE.source is TokenSource.ESTIMATED


def test_error_codes_compare_equal_to_their_names() -> None:
    assert LLMErrorCode.PROVIDER_POOL_EXHAUSTED == "PROVIDER_POOL_EXHAUSTED"
    assert {code.value for code in LLMErrorCode} == {
        "PROVIDER_TIMEOUT",
        "PROVIDER_RATE_LIMITED",
        "PROVIDER_UNAVAILABLE",
        "PROVIDER_BAD_RESPONSE",
        "PROVIDER_AUTH",
        "PROVIDER_POOL_EXHAUSTED",
        "PROVIDER_CANCELLED",
    }


def test_a_call_error_carries_code_message_attempts_and_partial_text() -> None:
    attempts = (_attempt(), _attempt(number=2))
    error = LLMCallError(
        LLMErrorCode.PROVIDER_TIMEOUT, "too slow", attempts=attempts, partial_text="Hel"
    )
    assert (error.code, error.message, error.attempts, error.partial_text) == (
        LLMErrorCode.PROVIDER_TIMEOUT,
        "too slow",
        attempts,
        "Hel",
    )
    assert str(error) == "PROVIDER_TIMEOUT: too slow"


def test_a_call_error_defaults_to_no_attempts_and_no_text() -> None:
    error = LLMCallError(LLMErrorCode.PROVIDER_AUTH, "refused")
    assert (error.attempts, error.partial_text) == ((), "")


def test_the_domain_port_imports_no_infrastructure() -> None:
    code = (
        "import sys, domain.llm; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'httpx', 'pydantic', 'sqlalchemy', 'strawberry', 'fastapi', 'infra', 'graph'}))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
