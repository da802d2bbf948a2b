"""The agent and model catalog through GraphQL: reading it, admins changing it, every bad input,
and an admin's edits surviving a restart (until `catalog sync --overwrite` makes the file win)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from domain.services.catalog import sync_catalog
from graph.app import create_app
from infra.catalog.loader import load_catalog
from infra.db.engine import Database
from infra.db.models import AgentRow, ModelRow
from infra.db.uow import SqlUnitOfWork
from infra.settings import DEFAULT_CATALOG, Settings
from tests.conftest import Actor, GraphQL, error_codes

AGENTS = """
query($all: Boolean!) {
  agents(includeDisabled: $all) { id key name description enabled systemPrompt model { alias } }
}"""
MODELS = """
{ models { alias provider maxOutputTokens contextWindow
  price { inputUsdPerMillionTokens outputUsdPerMillionTokens } } }"""
UPSERT_AGENT = """
mutation($input: AgentInput!) {
  upsertAgent(input: $input) { id key name description enabled systemPrompt model { alias } }
}"""
UPSERT_MODEL = """
mutation($input: ModelInput!) {
  upsertModel(input: $input) {
    alias provider maxOutputTokens contextWindow
    price { inputUsdPerMillionTokens outputUsdPerMillionTokens }
  }
}"""

CATALOG_KEYS = ["qwen", "deepseek", "writer", "researcher"]


def agent_input(**overrides: Any) -> dict[str, Any]:
    return {
        "key": "critic",
        "name": "Critic",
        "description": "Finds holes.",
        "systemPrompt": "You are Critic.",
        "modelAlias": "deepseek-chat",
        **overrides,
    }


def model_input(**overrides: Any) -> dict[str, Any]:
    return {
        "alias": "tiny",
        "provider": "scripted",
        "inputUsdPerMillionTokens": "0.000000001",
        "outputUsdPerMillionTokens": "123.456789012",
        "maxOutputTokens": 512,
        "contextWindow": 8192,
        **overrides,
    }


async def agents(gql: GraphQL, actor: Actor, *, all_: bool = False) -> list[dict[str, Any]]:
    body = await gql(AGENTS, {"all": all_}, as_=actor)
    assert "errors" not in body, body
    listed: list[dict[str, Any]] = body["data"]["agents"]
    return listed


async def models(gql: GraphQL, actor: Actor) -> dict[str, dict[str, Any]]:
    body = await gql(MODELS, as_=actor)
    assert "errors" not in body, body
    return {model["alias"]: model for model in body["data"]["models"]}


async def catalog_rows(database: Database) -> list[str]:
    async with database.reads() as session:
        rows = [*await session.execute(select(ModelRow.__table__))]
        rows += [*await session.execute(select(AgentRow.__table__))]
    return sorted(repr(tuple(row)) for row in rows)


def price(input_usd: str, output_usd: str) -> dict[str, str]:
    return {"inputUsdPerMillionTokens": input_usd, "outputUsdPerMillionTokens": output_usd}


# --- reading ----------------------------------------------------------------------------------


async def test_agents_lists_enabled_agents_unless_asked_for_all(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    # given
    assert [a["key"] for a in await agents(gql, alice)] == CATALOG_KEYS
    disable = agent_input(key="writer", name="Writer", modelAlias="writer-large", enabled=False)
    assert "errors" not in await gql(UPSERT_AGENT, {"input": disable}, as_=admin)

    # when
    enabled = await agents(gql, alice)
    everything = await agents(gql, admin, all_=True)  # disabled ones: for admins only

    # then
    assert [a["key"] for a in enabled] == ["qwen", "deepseek", "researcher"]
    assert [(a["key"], a["enabled"]) for a in everything] == [
        ("qwen", True),
        ("deepseek", True),
        ("writer", False),
        ("researcher", True),
    ]
    assert [a["model"]["alias"] for a in everything] == [
        "qwen-plus",
        "deepseek-chat",
        "writer-large",
        "researcher-large",
    ]


async def test_system_prompts_are_for_admins_only(gql: GraphQL, admin: Actor, alice: Actor) -> None:
    as_user = await agents(gql, alice)  # the four catalog agents are all enabled
    as_admin = await agents(gql, admin)

    assert [a["systemPrompt"] for a in as_user] == [None] * 4
    assert [a["systemPrompt"].split(",")[0] for a in as_admin] == [
        "You are Qwen",
        "You are DeepSeek",
        "You are Writer",
        "You are Researcher",
    ]


async def test_models_show_exact_decimal_prices(gql: GraphQL, alice: Actor) -> None:
    listed = await models(gql, alice)

    assert sorted(listed) == [
        "deepseek-chat",
        "manager-mini",
        "qwen-plus",
        "researcher-large",
        "summarizer-mini",
        "writer-large",
    ]
    assert listed["qwen-plus"] == {
        "alias": "qwen-plus",
        "provider": "scripted",
        "maxOutputTokens": 2048,
        "contextWindow": 131072,
        "price": price("0.4", "1.2"),
    }
    assert listed["deepseek-chat"]["price"] == price("0.27", "1.1")
    assert listed["manager-mini"]["price"] == price("0.15", "0.6")
    assert listed["writer-large"]["price"] == price("2.5", "10")  # fixed-point, not "1E+1"


# --- admins change the catalog ----------------------------------------------------------------


async def test_admin_inserts_then_updates_an_agent(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    # when: inserted
    body = await gql(UPSERT_AGENT, {"input": agent_input(key="  Critic ")}, as_=admin)

    # then
    inserted = body["data"]["upsertAgent"]
    assert inserted["key"] == "critic"
    assert inserted["model"] == {"alias": "deepseek-chat"}
    assert inserted["systemPrompt"] == "You are Critic."
    assert [a["key"] for a in await agents(gql, alice)] == [*CATALOG_KEYS, "critic"]

    # when: updated under the same key
    changed = agent_input(
        key="CRITIC", name="Harsh Critic", modelAlias="qwen-plus", systemPrompt="Be harsh."
    )
    body = await gql(UPSERT_AGENT, {"input": changed}, as_=admin)

    # then: the same agent, changed
    updated = body["data"]["upsertAgent"]
    assert updated["id"] == inserted["id"]
    assert (updated["name"], updated["model"], updated["systemPrompt"]) == (
        "Harsh Critic",
        {"alias": "qwen-plus"},
        "Be harsh.",
    )
    assert len(await agents(gql, alice)) == 5


async def test_admin_inserts_then_updates_a_model(gql: GraphQL, admin: Actor, alice: Actor) -> None:
    # when: inserted
    body = await gql(UPSERT_MODEL, {"input": model_input()}, as_=admin)

    # then
    assert body["data"]["upsertModel"] == {
        "alias": "tiny",
        "provider": "scripted",
        "maxOutputTokens": 512,
        "contextWindow": 8192,
        "price": price("0.000000001", "123.456789012"),
    }
    assert (await models(gql, alice))["tiny"]["price"] == price("0.000000001", "123.456789012")

    # when: updated, then made unpriced
    repriced = model_input(inputUsdPerMillionTokens="0.5", outputUsdPerMillionTokens="0.75")
    body = await gql(UPSERT_MODEL, {"input": repriced}, as_=admin)
    assert body["data"]["upsertModel"]["price"] == price("0.5", "0.75")
    unpriced = model_input(
        inputUsdPerMillionTokens=None, outputUsdPerMillionTokens=None, unpriced=True
    )
    body = await gql(UPSERT_MODEL, {"input": unpriced}, as_=admin)

    # then
    assert body["data"]["upsertModel"]["price"] is None
    listed = await models(gql, alice)
    assert listed["tiny"]["price"] is None
    assert len(listed) == 7


async def test_an_update_without_prices_keeps_the_models_prices(
    gql: GraphQL, admin: Actor, alice: Actor
) -> None:
    # given
    assert "errors" not in await gql(UPSERT_MODEL, {"input": model_input()}, as_=admin)

    # when: only the context window changes; the prices are omitted
    resized = {k: v for k, v in model_input(contextWindow=16384).items() if "Usd" not in k}
    body = await gql(UPSERT_MODEL, {"input": resized}, as_=admin)

    # then
    assert "errors" not in body, body
    assert body["data"]["upsertModel"]["contextWindow"] == 16384
    assert body["data"]["upsertModel"]["price"] == price("0.000000001", "123.456789012")
    assert (await models(gql, alice))["tiny"]["price"] == price("0.000000001", "123.456789012")


BAD_AGENT_INPUTS = {
    "unknown model alias": agent_input(modelAlias="no-such-model"),
    "bad key": agent_input(key="bad key!"),
    "key with an inner space": agent_input(key="cri tic"),
    "empty name": agent_input(name="  "),
    "empty system prompt": agent_input(systemPrompt=""),
    "update to an unknown model": agent_input(key="qwen", modelAlias="no-such-model"),
}
BAD_MODEL_INPUTS = {
    "unknown provider": model_input(provider="openai-somewhere"),
    "negative input price": model_input(inputUsdPerMillionTokens="-0.01"),
    "negative output price": model_input(outputUsdPerMillionTokens="-1"),
    "input price only": model_input(outputUsdPerMillionTokens=None),
    "output price only": model_input(inputUsdPerMillionTokens=None),
    "finer than a nano-USD": model_input(inputUsdPerMillionTokens="0.0000000001"),
    "max output equals context": model_input(maxOutputTokens=8192),
    "max output above context": model_input(maxOutputTokens=9000),
    "zero context window": model_input(contextWindow=0),
    "update to a negative price": model_input(alias="qwen-plus", inputUsdPerMillionTokens="-1"),
    "unpriced with prices": model_input(alias="qwen-plus", unpriced=True),
    "a new model with neither prices nor unpriced": model_input(
        inputUsdPerMillionTokens=None, outputUsdPerMillionTokens=None
    ),
}


@pytest.mark.parametrize(
    ("mutation", "cases"),
    [
        pytest.param(UPSERT_AGENT, BAD_AGENT_INPUTS, id="upsertAgent"),
        pytest.param(UPSERT_MODEL, BAD_MODEL_INPUTS, id="upsertModel"),
    ],
)
async def test_bad_catalog_input_is_coded_and_writes_nothing(
    gql: GraphQL,
    admin: Actor,
    database: Database,
    mutation: str,
    cases: dict[str, dict[str, Any]],
) -> None:
    before = await catalog_rows(database)

    for case, input_ in cases.items():
        body = await gql(mutation, {"input": input_}, as_=admin)
        assert error_codes(body) == ["BAD_USER_INPUT"], (case, body)

    assert await catalog_rows(database) == before


# --- restarts and `catalog sync --overwrite` --------------------------------------------------


@asynccontextmanager
async def restarted(settings: Settings) -> AsyncIterator[GraphQL]:
    """A second app on the same database, through its whole start-up (which syncs the file)."""
    second = create_app(settings, migrate_on_start=False)
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://pantheon.test") as http:
            yield GraphQL(http)


async def test_admin_edits_survive_a_restart_until_overwritten(
    gql: GraphQL, admin: Actor, database: Database, settings: Settings
) -> None:
    # given: an admin repriced a model and disabled an agent
    repriced = model_input(
        alias="qwen-plus",
        inputUsdPerMillionTokens="0.55",
        outputUsdPerMillionTokens="1.65",
        maxOutputTokens=2048,
        contextWindow=131072,
    )
    assert "errors" not in await gql(UPSERT_MODEL, {"input": repriced}, as_=admin)
    disabled = agent_input(key="deepseek", name="DeepSeek", enabled=False)
    assert "errors" not in await gql(UPSERT_AGENT, {"input": disabled}, as_=admin)

    # when: the service restarts
    async with restarted(settings) as after_restart:
        # then: the admin's values, not the file's
        assert (await models(after_restart, admin))["qwen-plus"]["price"] == price("0.55", "1.65")
        assert "deepseek" not in [a["key"] for a in await agents(after_restart, admin)]

    # when: the operator runs `pantheon catalog sync --overwrite`
    report = await sync_catalog(
        SqlUnitOfWork(database.writes), load_catalog(DEFAULT_CATALOG).spec, overwrite=True
    )

    # then: the file wins
    assert report.updated == 10  # 6 models + 4 agents
    assert (await models(gql, admin))["qwen-plus"]["price"] == price("0.4", "1.2")
    assert [a["key"] for a in await agents(gql, admin)] == CATALOG_KEYS
