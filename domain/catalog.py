"""The catalog's entries as the file (or an admin) declares them, before they are stored."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    alias: str
    provider: str
    provider_model: str | None  # the vendor's model id; None: the alias (new) or unchanged
    input_nano_per_mtok: int | None
    output_nano_per_mtok: int | None
    max_output_tokens: int
    context_window: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSpec:
    key: str
    name: str
    description: str
    system_prompt: str
    model_alias: str
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogSpec:
    models: tuple[ModelSpec, ...]
    agents: tuple[AgentSpec, ...]
    manager_model: str
    summarizer_model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncReport:
    inserted: int
    updated: int
    unchanged: int
