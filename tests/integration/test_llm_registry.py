"""``build_gateway``: one client per catalog entry, routing by provider, env overrides, close."""

from __future__ import annotations

import socket

import pytest

from domain.enums import CallKind
from domain.llm import LLMCallError, LLMErrorCode
from infra.llm.config import ProviderConfigError
from infra.llm.registry import build_gateway
from infra.llm.scripted_replies import OFFLINE_MARK
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.llm_helpers import collect, make_request


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_requests_go_to_the_provider_they_name(fake_openai: FakeOpenAIServer) -> None:
    gateway = build_gateway(
        {"scripted": {"kind": "scripted"}, "local": fake_openai.provider_entry()}, environ={}
    )
    try:
        offline = await gateway.complete(make_request(provider="scripted"))
        assert fake_openai.requests() == []
        online = await gateway.complete(make_request(provider="local"))
        _, streamed = await collect(gateway.stream(make_request(provider="local")))
    finally:
        await gateway.aclose()
    assert offline.text.startswith(OFFLINE_MARK)
    assert online.text == streamed.text == "not json"
    assert len(fake_openai.requests()) == 2


async def test_env_overrides_repoint_a_provider_and_pick_its_key(
    fake_openai: FakeOpenAIServer,
) -> None:
    catalog = {
        "local-vllm": fake_openai.provider_entry(
            base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key_env="UNSET_KEY"
        )
    }
    environ = {
        "PANTHEON_PROVIDER_LOCAL_VLLM_BASE_URL": fake_openai.base_url,
        "PANTHEON_PROVIDER_LOCAL_VLLM_API_KEY_ENV": "GPU_KEY",
        "GPU_KEY": "key-from-env",
    }
    gateway = build_gateway(catalog, environ=environ)
    try:
        result = await gateway.complete(make_request(provider="local-vllm"))
    finally:
        await gateway.aclose()
    assert result.text == "not json"
    (served,) = fake_openai.requests()
    assert served.headers["authorization"] == "Bearer key-from-env"


async def test_a_key_variable_that_is_not_set_means_no_authorization(
    fake_openai: FakeOpenAIServer,
) -> None:
    gateway = build_gateway({"p": fake_openai.provider_entry(api_key_env="NOT_SET")}, environ={})
    try:
        await gateway.complete(make_request(provider="p"))
    finally:
        await gateway.aclose()
    assert "authorization" not in fake_openai.requests()[0].headers


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_unknown_provider_fails_without_reaching_anyone(streamed: bool) -> None:
    gateway = build_gateway({"scripted": {"kind": "scripted"}}, environ={})
    request = make_request(provider="nowhere", call_kind=CallKind.MANAGER_ROUTING)
    stream = gateway.stream(request)
    with pytest.raises(LLMCallError) as caught:
        await (collect(stream) if streamed else gateway.complete(request))
    await gateway.aclose()
    assert caught.value.code == LLMErrorCode.PROVIDER_UNAVAILABLE
    assert "nowhere" in caught.value.message
    (attempt,) = caught.value.attempts
    assert (attempt.reached_provider, attempt.may_be_billed, attempt.succeeded) == (
        False,
        False,
        False,
    )
    if streamed:
        assert stream.attempts == caught.value.attempts


async def test_aclose_closes_every_client(fake_openai: FakeOpenAIServer) -> None:
    gateway = build_gateway(
        {"a": fake_openai.provider_entry(), "b": fake_openai.provider_entry()}, environ={}
    )
    await gateway.aclose()
    for name in ("a", "b"):
        with pytest.raises(RuntimeError, match="closed"):
            await gateway.complete(make_request(provider=name))


def test_an_invalid_entry_is_refused_before_anything_starts() -> None:
    with pytest.raises(ProviderConfigError, match=r"provider 'broken': base_url"):
        build_gateway({"ok": {"kind": "scripted"}, "broken": {"kind": "openai"}}, environ={})
