"""Validation of the catalog's ``[providers.<name>]`` tables, with environment overrides.

Two kinds::

    [providers.scripted]            # offline, deterministic; no options beyond `seed`
    kind = "scripted"

    [providers.local-vllm]          # any OpenAI-compatible /chat/completions server
    kind = "openai"
    base_url = "http://127.0.0.1:8000/v1"
    api_key_env = "VLLM_API_KEY"    # name of the variable holding the key; unset = no auth header

An operator repoints a provider without editing the file with ``PANTHEON_PROVIDER_<NAME>_BASE_URL``
and ``PANTHEON_PROVIDER_<NAME>_API_KEY_ENV`` (NAME upper-cased, ``-`` and ``.`` as ``_``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

_STRICT = ConfigDict(extra="forbid", frozen=True)
OVERRIDABLE_FIELDS = ("base_url", "api_key_env")


class ProviderConfigError(ValueError):
    """A provider entry is invalid; the message names the provider and the field."""


class Timeouts(BaseModel):
    """Seconds. ``read`` bounds each wait for bytes; ``total`` bounds the whole call, retries and
    backoff included."""

    model_config = _STRICT
    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=60.0, gt=0)
    write: float = Field(default=10.0, gt=0)
    total: float = Field(default=120.0, gt=0)


class RetryPolicy(BaseModel):
    """``max_attempts`` counts the first try. Delay n = min(max_delay, base_delay * 2**(n-1)),
    stretched by up to ``jitter`` (a fraction) at random; a ``Retry-After`` wins, capped too."""

    model_config = _STRICT
    max_attempts: int = Field(default=3, ge=1, le=10)
    base_delay: float = Field(default=0.5, ge=0)
    max_delay: float = Field(default=8.0, ge=0)
    jitter: float = Field(default=0.2, ge=0, le=1)


class PoolLimits(BaseModel):
    """The provider's one shared connection pool. Waiting longer than ``pool_timeout`` for a
    connection fails the call with PROVIDER_POOL_EXHAUSTED (nothing sent, nothing billed)."""

    model_config = _STRICT
    max_connections: int = Field(default=50, ge=1)
    max_keepalive: int = Field(default=20, ge=0)
    keepalive_expiry: float = Field(default=30.0, ge=0)
    pool_timeout: float = Field(default=5.0, gt=0)


class ScriptedProviderConfig(BaseModel):
    """The offline provider: deterministic replies, estimated usage, no network."""

    model_config = _STRICT
    kind: Literal["scripted"]
    seed: int = 0


class OpenAIProviderConfig(BaseModel):
    """An OpenAI-compatible server (OpenAI, vLLM, Ollama, llama.cpp, LiteLLM, ...).

    ``stream_usage`` sends ``stream_options.include_usage`` so streams end with real token
    counts; turn it off for servers that answer it with 400 (usage is then estimated).
    ``json_response_format`` sends ``response_format={"type": "json_object"}`` on JSON calls, for
    servers known to support it.
    """

    model_config = _STRICT
    kind: Literal["openai"]
    base_url: str
    api_key_env: str | None = None
    extra_headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    pool: PoolLimits = Field(default_factory=PoolLimits)
    stream_usage: bool = True
    json_response_format: bool = False

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None


ProviderConfig = Annotated[
    ScriptedProviderConfig | OpenAIProviderConfig, Field(discriminator="kind")
]
_ADAPTER: TypeAdapter[ScriptedProviderConfig | OpenAIProviderConfig] = TypeAdapter(ProviderConfig)


def override_prefix(name: str) -> str:
    """``local-vllm`` → ``PANTHEON_PROVIDER_LOCAL_VLLM_``."""
    return "PANTHEON_PROVIDER_" + name.upper().replace("-", "_").replace(".", "_") + "_"


def parse_provider(
    name: str, raw: Mapping[str, Any], environ: Mapping[str, str]
) -> ScriptedProviderConfig | OpenAIProviderConfig:
    """Validate one provider entry after applying its environment overrides."""
    entry = dict(raw)
    prefix = override_prefix(name)
    for field in OVERRIDABLE_FIELDS:
        value = environ.get(prefix + field.upper())
        if value is not None:
            if entry.get("kind") != "openai":
                raise ProviderConfigError(
                    f"provider {name!r}: {prefix}{field.upper()} is set but the provider's kind "
                    f"is {entry.get('kind')!r}; only kind 'openai' takes a {field}"
                )
            entry[field] = value
    try:
        return _ADAPTER.validate_python(entry)
    except ValidationError as exc:
        raise ProviderConfigError(f"provider {name!r}: {_describe(exc)}") from None


def parse_providers(
    providers: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str]
) -> dict[str, ScriptedProviderConfig | OpenAIProviderConfig]:
    """Validate every entry; the first invalid one raises ``ProviderConfigError``."""
    return {name: parse_provider(name, raw, environ) for name, raw in providers.items()}


def _describe(exc: ValidationError) -> str:
    # Name each offending field the way the TOML spells it; the discriminator's tag ("openai")
    # is noise in a path an operator reads.
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] in ("openai", "scripted"):
            loc = loc[1:]
        parts.append(f"{'.'.join(loc) or 'kind'}: {error['msg']}")
    return "; ".join(parts)
