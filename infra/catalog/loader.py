"""Reads and validates the catalog TOML into the domain's `CatalogSpec` (plus provider configs)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.catalog import AgentSpec, CatalogSpec, ModelSpec
from domain.errors import BadUserInput
from domain.money import price_to_nano


class CatalogError(Exception):
    """The catalog file cannot be used; the message names the file and the entry."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alias: str
    provider: str
    provider_model: str | None = None
    input_usd_per_million_tokens: Decimal | None = None
    output_usd_per_million_tokens: Decimal | None = None
    max_output_tokens: int = Field(gt=0)
    context_window: int = Field(gt=0)


class _Agent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    name: str
    model: str
    description: str = ""
    system_prompt: str
    enabled: bool = True


class _Routing(BaseModel):
    manager_model: str


class _Summaries(BaseModel):
    model: str


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    providers: dict[str, dict[str, Any]]
    routing: _Routing
    summaries: _Summaries
    models: list[_Model]
    agents: list[_Agent]


@dataclass(frozen=True, slots=True)
class Catalog:
    spec: CatalogSpec
    providers: dict[str, dict[str, Any]]  # validated by infra.llm when the gateway is built


def load_catalog(path: Path) -> Catalog:
    try:
        raw = _File.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        spec = CatalogSpec(
            models=tuple(_model_spec(model) for model in raw.models),
            agents=tuple(_agent_spec(agent) for agent in raw.agents),
            manager_model=raw.routing.manager_model,
            summarizer_model=raw.summaries.model,
        )
    except OSError as error:
        raise CatalogError(f"{path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise CatalogError(f"{path}: not valid TOML: {error}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CatalogError(f"{path}: {where}: {first['msg']}") from None
    except BadUserInput as error:
        raise CatalogError(f"{path}: {error.message}") from None
    _check_references(path, spec, raw.providers)
    return Catalog(spec=spec, providers=raw.providers)


def _model_spec(model: _Model) -> ModelSpec:
    def price(value: Decimal | None, field: str) -> int | None:
        return None if value is None else price_to_nano(value, field=field)

    return ModelSpec(
        alias=model.alias,
        provider=model.provider,
        provider_model=model.provider_model or model.alias,
        input_nano_per_mtok=price(model.input_usd_per_million_tokens, model.alias),
        output_nano_per_mtok=price(model.output_usd_per_million_tokens, model.alias),
        max_output_tokens=model.max_output_tokens,
        context_window=model.context_window,
    )


def _agent_spec(agent: _Agent) -> AgentSpec:
    return AgentSpec(
        key=agent.key,
        name=agent.name,
        description=agent.description,
        system_prompt=agent.system_prompt,
        model_alias=agent.model,
        enabled=agent.enabled,
    )


def _check_references(path: Path, spec: CatalogSpec, providers: dict[str, Any]) -> None:
    aliases = {model.alias for model in spec.models}
    for model in spec.models:
        if model.provider not in providers:
            raise CatalogError(f"{path}: model {model.alias!r} uses unknown provider")
    wanted = [(a.key, a.model_alias) for a in spec.agents]
    wanted += [("routing", spec.manager_model), ("summaries", spec.summarizer_model)]
    for owner, alias in wanted:
        if alias not in aliases:
            raise CatalogError(f"{path}: {owner!r} uses model {alias!r}, not in this file")
