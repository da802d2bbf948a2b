"""Catalog use cases against the fake unit of work: file sync (insert-missing vs overwrite) and
admin upserts with their validation."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from domain.catalog import AgentSpec, CatalogSpec, ModelSpec, SyncReport
from domain.errors import BadUserInput
from domain.services.catalog import sync_catalog, upsert_agent, upsert_model
from tests.fakes.fake_uow import FakeStore, FakeUnitOfWork

QWEN = ModelSpec(
    alias="qwen-plus",
    provider="scripted",
    provider_model="qwen-plus",
    input_nano_per_mtok=400_000_000,
    output_nano_per_mtok=1_200_000_000,
    max_output_tokens=2048,
    context_window=131072,
)
MINI = ModelSpec(
    alias="mini",
    provider="scripted",
    provider_model="gpt-4o-mini",
    input_nano_per_mtok=150_000_000,
    output_nano_per_mtok=600_000_000,
    max_output_tokens=256,
    context_window=128000,
)
QWEN_AGENT = AgentSpec(
    key="qwen",
    name="Qwen",
    description="generalist",
    system_prompt="Answer.",
    model_alias="qwen-plus",
)
WRITER_AGENT = AgentSpec(
    key="writer", name="Writer", description="", system_prompt="Write.", model_alias="mini"
)
CATALOG = CatalogSpec(
    models=(QWEN, MINI),
    agents=(QWEN_AGENT, WRITER_AGENT),
    manager_model="mini",
    summarizer_model="mini",
)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def uow(store: FakeStore) -> FakeUnitOfWork:
    return FakeUnitOfWork(store)


async def synced(store: FakeStore) -> FakeStore:
    await sync_catalog(FakeUnitOfWork(store), CATALOG, overwrite=False)
    return store


def model_by_alias(store: FakeStore, alias: str) -> ModelSpec | None:
    found = next((m for m in store.models.values() if m.alias == alias), None)
    if found is None:
        return None
    return ModelSpec(
        alias=found.alias,
        provider=found.provider,
        provider_model=found.provider_model,
        input_nano_per_mtok=found.input_nano_per_mtok,
        output_nano_per_mtok=found.output_nano_per_mtok,
        max_output_tokens=found.max_output_tokens,
        context_window=found.context_window,
    )


# sync_catalog


async def test_sync_into_an_empty_database_inserts_everything_in_one_commit(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    # when
    report = await sync_catalog(uow, CATALOG, overwrite=False)

    # then
    assert report == SyncReport(inserted=4, updated=0, unchanged=0)
    assert uow.commits == 1
    assert model_by_alias(store, "qwen-plus") == QWEN
    agents = {agent.key: agent for agent in store.agents.values()}
    assert set(agents) == {"qwen", "writer"}
    assert store.models[agents["writer"].model_id].alias == "mini"


async def test_sync_again_inserts_only_what_is_missing_and_keeps_admin_edits(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    # given: an admin raised a price, and the file gained a model
    await synced(store)
    await upsert_model(FakeUnitOfWork(store), replace(QWEN, input_nano_per_mtok=999))
    extra = replace(MINI, alias="extra")
    catalog = replace(CATALOG, models=(*CATALOG.models, extra))

    # when
    report = await sync_catalog(uow, catalog, overwrite=False)

    # then
    assert report == SyncReport(inserted=1, updated=0, unchanged=4)
    assert model_by_alias(store, "qwen-plus") == replace(QWEN, input_nano_per_mtok=999)
    assert model_by_alias(store, "extra") == extra


async def test_sync_with_overwrite_makes_the_file_win(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    # given
    await synced(store)
    await upsert_model(FakeUnitOfWork(store), replace(QWEN, input_nano_per_mtok=999))
    await upsert_agent(FakeUnitOfWork(store), replace(QWEN_AGENT, name="Renamed", enabled=False))
    ids_before = set(store.models) | set(store.agents)

    # when
    report = await sync_catalog(uow, CATALOG, overwrite=True)

    # then
    assert report == SyncReport(inserted=0, updated=4, unchanged=0)
    assert model_by_alias(store, "qwen-plus") == QWEN
    qwen = next(agent for agent in store.agents.values() if agent.key == "qwen")
    assert (qwen.name, qwen.enabled) == ("Qwen", True)
    assert set(store.models) | set(store.agents) == ids_before  # updated in place, same ids


async def test_sync_of_an_agent_with_an_unknown_model_commits_nothing(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    broken = replace(CATALOG, agents=(QWEN_AGENT, replace(WRITER_AGENT, model_alias="nope")))

    with pytest.raises(BadUserInput, match="agent 'writer' uses unknown model"):
        await sync_catalog(uow, broken, overwrite=False)
    assert uow.commits == 0
    assert store == FakeStore()  # all of the file or none of it


@pytest.mark.parametrize(
    ("bad_model", "message"),
    [
        (replace(QWEN, input_nano_per_mtok=-1), "prices must not be negative"),
        (replace(QWEN, output_nano_per_mtok=None), "give both prices or neither"),
        (replace(QWEN, max_output_tokens=131072), "smaller than contextWindow"),
        (replace(QWEN, context_window=0), "contextWindow must be positive"),
        (replace(QWEN, alias=" "), "alias must not be empty"),
    ],
)
async def test_sync_of_an_invalid_model_commits_nothing(
    uow: FakeUnitOfWork, store: FakeStore, bad_model: ModelSpec, message: str
) -> None:
    await synced(store)
    before = copy.deepcopy(store)
    broken = replace(CATALOG, models=(bad_model, MINI))

    with pytest.raises(BadUserInput, match=message):
        await sync_catalog(uow, broken, overwrite=True)
    assert uow.commits == 0
    assert store == before


# upserts (admin edits)


async def test_upsert_model_inserts_then_updates_the_same_row(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    created = await upsert_model(uow, QWEN)
    updated = await upsert_model(uow, replace(QWEN, output_nano_per_mtok=1))

    assert updated.id == created.id
    assert list(store.models) == [created.id]
    assert store.models[created.id].output_nano_per_mtok == 1
    assert uow.commits == 2


async def test_an_unpriced_model_is_allowed_when_asked_for(uow: FakeUnitOfWork) -> None:
    model = await upsert_model(
        uow, replace(QWEN, input_nano_per_mtok=None, output_nano_per_mtok=None), unpriced=True
    )
    assert model.priced is False


async def test_omitted_prices_leave_an_existing_models_prices_unchanged(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    created = await upsert_model(uow, QWEN)

    updated = await upsert_model(
        uow,
        replace(QWEN, input_nano_per_mtok=None, output_nano_per_mtok=None, context_window=65536),
    )

    assert (updated.input_nano_per_mtok, updated.output_nano_per_mtok) == (
        QWEN.input_nano_per_mtok,
        QWEN.output_nano_per_mtok,
    )
    assert store.models[created.id].context_window == 65536
    assert store.models[created.id].priced is True


async def test_making_a_model_unpriced_takes_unpriced_and_no_prices(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    created = await upsert_model(uow, QWEN)
    without = replace(QWEN, input_nano_per_mtok=None, output_nano_per_mtok=None)

    with pytest.raises(BadUserInput, match="takes no prices"):
        await upsert_model(uow, QWEN, unpriced=True)
    with pytest.raises(BadUserInput, match="unpriced: true"):
        await upsert_model(uow, replace(without, alias="brand-new"))
    assert store.models[created.id].priced is True

    await upsert_model(uow, without, unpriced=True)

    assert store.models[created.id].priced is False


async def test_upsert_agent_normalizes_the_key_and_text(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    await synced(store)

    agent = await upsert_agent(
        uow,
        AgentSpec(
            key="Critic",
            name="  Critic ",
            description=" finds flaws ",
            system_prompt="\nCriticize.\n",
            model_alias="mini",
        ),
    )

    assert (agent.key, agent.name, agent.description, agent.system_prompt) == (
        "critic",
        "Critic",
        "finds flaws",
        "Criticize.",
    )
    assert store.models[agent.model_id].alias == "mini"


async def test_upsert_agent_moves_an_existing_agent_to_another_model(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    await synced(store)
    before = next(agent for agent in store.agents.values() if agent.key == "qwen")

    moved = await upsert_agent(uow, replace(QWEN_AGENT, model_alias="mini"))

    assert moved.id == before.id
    assert store.models[moved.model_id].alias == "mini"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (replace(QWEN_AGENT, model_alias="nope"), "unknown model alias 'nope'"),
        (replace(QWEN_AGENT, key="bad key"), "agent key 'bad key'"),
        (replace(QWEN_AGENT, name=""), "name must not be empty"),
        (replace(QWEN_AGENT, system_prompt="  "), "systemPrompt must not be empty"),
    ],
)
async def test_invalid_agent_upsert_commits_nothing(
    uow: FakeUnitOfWork, store: FakeStore, spec: AgentSpec, message: str
) -> None:
    await synced(store)
    before = copy.deepcopy(store)

    with pytest.raises(BadUserInput, match=message):
        await upsert_agent(uow, spec)
    assert uow.commits == 0
    assert store == before
