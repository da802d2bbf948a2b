"""The agent and model catalog: file sync at start, admin edits through the API."""

from __future__ import annotations

from dataclasses import replace

from domain import validation
from domain.catalog import AgentSpec, CatalogSpec, ModelSpec, SyncReport
from domain.errors import BadUserInput
from domain.ports import UnitOfWork
from domain.records import Agent, Model


def checked_model(spec: ModelSpec) -> ModelSpec:
    validation.text(spec.alias, field="alias", max_length=64)
    validation.text(spec.provider, field="provider", max_length=64)
    if spec.provider_model is not None:
        validation.text(
            spec.provider_model, field="providerModel", max_length=128, allow_empty=True
        )
    validation.positive(spec.max_output_tokens, field="maxOutputTokens")
    validation.positive(spec.context_window, field="contextWindow")
    if (spec.input_nano_per_mtok is None) != (spec.output_nano_per_mtok is None):
        raise BadUserInput("give both prices or neither (an unpriced model)")
    for price in (spec.input_nano_per_mtok, spec.output_nano_per_mtok):
        if price is not None and price < 0:
            raise BadUserInput("prices must not be negative")
    if spec.max_output_tokens >= spec.context_window:
        raise BadUserInput("maxOutputTokens must be smaller than contextWindow")
    return spec


def checked_agent(spec: AgentSpec) -> AgentSpec:
    validation.text(spec.name, field="name", max_length=128)
    validation.text(spec.system_prompt, field="systemPrompt", max_length=20_000)
    validation.text(spec.description, field="description", max_length=2_000, allow_empty=True)
    return AgentSpec(
        key=validation.agent_key(spec.key),
        name=spec.name.strip(),
        description=spec.description.strip(),
        system_prompt=spec.system_prompt.strip(),
        model_alias=spec.model_alias,
        enabled=spec.enabled,
    )


async def upsert_model(uow: UnitOfWork, spec: ModelSpec, *, unpriced: bool = False) -> Model:
    """Inserts or updates a model. Omitted prices (both None) leave an existing model's prices
    unchanged; making a model unpriced takes `unpriced` (a silent $0 is never a default)."""
    spec = checked_model(spec)
    priced = spec.input_nano_per_mtok is not None
    if unpriced and priced:
        raise BadUserInput("unpriced: true takes no prices")
    async with uow:
        existing = await uow.models.get_by_alias(spec.alias)
        if not priced and not unpriced:
            if existing is None:
                raise BadUserInput("a new model needs both prices, or unpriced: true")
            spec = replace(
                spec,
                input_nano_per_mtok=existing.input_nano_per_mtok,
                output_nano_per_mtok=existing.output_nano_per_mtok,
            )
        if existing is None:
            model = await uow.models.insert(spec)
        else:
            model = await uow.models.update(existing.id, spec)
        await uow.commit()
    return model


async def upsert_agent(uow: UnitOfWork, spec: AgentSpec) -> Agent:
    spec = checked_agent(spec)
    async with uow:
        model = await uow.models.get_by_alias(spec.model_alias)
        if model is None:
            raise BadUserInput(f"unknown model alias {spec.model_alias!r}")
        existing = await uow.agents.get_by_key(spec.key)
        if existing is None:
            agent = await uow.agents.insert(spec, model_id=model.id)
        else:
            agent = await uow.agents.update(existing.id, spec, model_id=model.id)
        await uow.commit()
    return agent


async def sync_catalog(uow: UnitOfWork, catalog: CatalogSpec, *, overwrite: bool) -> SyncReport:
    """Inserts what the database lacks; existing rows stay as admins left them unless
    `overwrite`, which makes the file win. One unit of work: all of the file or none of it."""
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    async with uow:
        for model_spec in map(checked_model, catalog.models):
            model = await uow.models.get_by_alias(model_spec.alias)
            if model is None:
                await uow.models.insert(model_spec)
                counts["inserted"] += 1
            elif overwrite:
                await uow.models.update(model.id, model_spec)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        await uow.flush()  # agents below look their models up, new ones included
        for agent_spec in map(checked_agent, catalog.agents):
            model = await uow.models.get_by_alias(agent_spec.model_alias)
            if model is None:
                raise BadUserInput(f"agent {agent_spec.key!r} uses unknown model")
            agent = await uow.agents.get_by_key(agent_spec.key)
            if agent is None:
                await uow.agents.insert(agent_spec, model_id=model.id)
                counts["inserted"] += 1
            elif overwrite:
                await uow.agents.update(agent.id, agent_spec, model_id=model.id)
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        await uow.commit()
    return SyncReport(**counts)
