"""Validation of the catalog's provider entries and their environment overrides."""

from __future__ import annotations

import pytest

from infra.llm.config import (
    OpenAIProviderConfig,
    ProviderConfigError,
    ScriptedProviderConfig,
    override_prefix,
    parse_provider,
    parse_providers,
)

VLLM = {
    "kind": "openai",
    "base_url": "http://127.0.0.1:8000/v1/",
    "api_key_env": "VLLM_API_KEY",
    "stream_usage": True,
    "timeouts": {"connect": 5.0, "read": 60.0, "total": 120.0},
    "retry": {"max_attempts": 3, "base_delay": 0.5, "max_delay": 8.0},
    "pool": {"max_connections": 50, "max_keepalive": 20, "pool_timeout": 5.0},
}


def test_the_documented_example_entries_validate() -> None:
    configs = parse_providers({"scripted": {"kind": "scripted"}, "local-vllm": VLLM}, {})
    assert configs["scripted"] == ScriptedProviderConfig(kind="scripted", seed=0)
    vllm = configs["local-vllm"]
    assert isinstance(vllm, OpenAIProviderConfig)
    assert vllm.base_url == "http://127.0.0.1:8000/v1"  # trailing slash dropped
    assert (vllm.pool.max_connections, vllm.retry.max_attempts, vllm.timeouts.read) == (50, 3, 60)


def test_an_openai_entry_needs_only_a_base_url() -> None:
    config = parse_provider("ollama", {"kind": "openai", "base_url": "http://h:11434/v1"}, {})
    assert isinstance(config, OpenAIProviderConfig)
    assert config.api_key_env is None
    assert config.stream_usage is True
    assert config.extra_headers == {}
    assert config.json_response_format is False


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"kind": "openai"}, "provider 'p': base_url: Field required"),
        ({"kind": "openai", "base_url": "ftp://x"}, "provider 'p': base_url: Value error"),
        ({"kind": "openai", "base_url": "http://x", "timeouts": {"read": 0}}, "timeouts.read"),
        ({"kind": "openai", "base_url": "http://x", "retry": {"max_attempts": 0}}, "retry."),
        ({"kind": "openai", "base_url": "http://x", "pool": {"max_connections": 0}}, "pool."),
        ({"kind": "openai", "base_url": "http://x", "timeout": 3}, "timeout: Extra inputs"),
        ({"kind": "scripted", "base_url": "http://x"}, "base_url: Extra inputs"),
        ({"kind": "anthropic"}, "provider 'p': kind:"),
        ({}, "provider 'p': kind:"),
    ],
)
def test_errors_name_the_provider_and_the_field(entry: dict[str, object], expected: str) -> None:
    with pytest.raises(ProviderConfigError) as caught:
        parse_provider("p", entry, {})
    assert expected in str(caught.value)


def test_the_override_prefix_upper_cases_and_replaces_dashes() -> None:
    assert override_prefix("local-vllm") == "PANTHEON_PROVIDER_LOCAL_VLLM_"


def test_env_overrides_repoint_the_base_url_and_the_key_variable() -> None:
    environ = {
        "PANTHEON_PROVIDER_LOCAL_VLLM_BASE_URL": "https://gpu-box:9000/v1",
        "PANTHEON_PROVIDER_LOCAL_VLLM_API_KEY_ENV": "GPU_BOX_KEY",
    }
    config = parse_provider("local-vllm", VLLM, environ)
    assert isinstance(config, OpenAIProviderConfig)
    assert (config.base_url, config.api_key_env) == ("https://gpu-box:9000/v1", "GPU_BOX_KEY")


def test_an_invalid_override_is_reported_like_a_file_error() -> None:
    environ = {"PANTHEON_PROVIDER_LOCAL_VLLM_BASE_URL": "gpu-box:9000"}
    with pytest.raises(ProviderConfigError, match="provider 'local-vllm': base_url"):
        parse_provider("local-vllm", VLLM, environ)


def test_an_override_for_a_scripted_provider_is_refused_loudly() -> None:
    environ = {"PANTHEON_PROVIDER_SCRIPTED_BASE_URL": "http://x/v1"}
    with pytest.raises(ProviderConfigError, match="PANTHEON_PROVIDER_SCRIPTED_BASE_URL"):
        parse_provider("scripted", {"kind": "scripted"}, environ)


def test_other_providers_overrides_do_not_apply() -> None:
    environ = {"PANTHEON_PROVIDER_OTHER_BASE_URL": "http://elsewhere/v1"}
    config = parse_provider("local-vllm", VLLM, environ)
    assert isinstance(config, OpenAIProviderConfig)
    assert config.base_url == "http://127.0.0.1:8000/v1"


def test_a_blank_key_variable_name_means_no_key() -> None:
    config = parse_provider("p", {"kind": "openai", "base_url": "http://x", "api_key_env": ""}, {})
    assert isinstance(config, OpenAIProviderConfig)
    assert config.api_key_env is None
