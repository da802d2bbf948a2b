"""The agent and model catalog: everyone reads it; admins change it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry

from domain.catalog import AgentSpec, ModelSpec
from domain.errors import BadUserInput, Forbidden
from domain.money import MAX_PRICE_USD_PER_MTOK, price_to_nano
from domain.services import catalog as service
from graph.catalog.types import AgentNode, ModelType
from graph.context import Info
from graph.permissions import IsAdmin, IsAuthenticated


@strawberry.input
class AgentInput:
    key: str
    name: str
    description: str | None = None
    system_prompt: str
    model_alias: str
    enabled: bool = True


_PRICE_DESCRIPTION = (
    f"USD per million tokens, 0 to {MAX_PRICE_USD_PER_MTOK}, at most 9 decimal places; "
    "both prices omitted: unchanged (`unpriced: true` makes the model unpriced)"
)


@strawberry.input
class ModelInput:
    alias: str
    provider: str
    provider_model: str | None = strawberry.field(
        default=None, description="the vendor's model id; default: the alias, or unchanged"
    )
    input_usd_per_million_tokens: Decimal | None = strawberry.field(
        default=None, description=_PRICE_DESCRIPTION
    )
    output_usd_per_million_tokens: Decimal | None = strawberry.field(
        default=None, description=_PRICE_DESCRIPTION
    )
    max_output_tokens: int
    context_window: int
    unpriced: bool = strawberry.field(
        default=False,
        description="true: the model has no price (its calls cost 0 and count as unpriced); "
        "takes no prices",
    )


@strawberry.type
class CatalogQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def agents(
        self,
        info: Info,
        include_disabled: Annotated[
            bool, strawberry.argument(description="ADMIN only (FORBIDDEN for others)")
        ] = False,
    ) -> list[AgentNode]:
        if include_disabled and not info.context.require_viewer().is_admin:
            raise Forbidden("only an admin may list disabled agents")
        agents = await info.context.runtime.reads.all_agents(include_disabled=include_disabled)
        return [AgentNode.from_record(agent) for agent in agents]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def models(self, info: Info) -> list[ModelType]:
        return [ModelType.from_record(m) for m in await info.context.runtime.reads.all_models()]


@strawberry.type
class CatalogMutations:
    @strawberry.mutation(permission_classes=[IsAdmin], description="ADMIN")
    async def upsert_agent(self, info: Info, input: AgentInput) -> AgentNode:
        spec = AgentSpec(
            key=input.key,
            name=input.name,
            description=input.description or "",
            system_prompt=input.system_prompt,
            model_alias=input.model_alias,
            enabled=input.enabled,
        )
        return AgentNode.from_record(
            await service.upsert_agent(info.context.runtime.new_uow(), spec)
        )

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="ADMIN; a new price applies to new calls only; omitted prices stay as they are",
    )
    async def upsert_model(self, info: Info, input: ModelInput) -> ModelType:
        if input.provider not in info.context.runtime.providers:
            raise BadUserInput(f"unknown provider {input.provider!r}")
        spec = ModelSpec(
            alias=input.alias,
            provider=input.provider,
            provider_model=input.provider_model,
            input_nano_per_mtok=_price(
                input.input_usd_per_million_tokens, "inputUsdPerMillionTokens"
            ),
            output_nano_per_mtok=_price(
                input.output_usd_per_million_tokens, "outputUsdPerMillionTokens"
            ),
            max_output_tokens=input.max_output_tokens,
            context_window=input.context_window,
        )
        return ModelType.from_record(
            await service.upsert_model(
                info.context.runtime.new_uow(), spec, unpriced=input.unpriced
            )
        )


def _price(value: Decimal | None, field: str) -> int | None:
    return None if value is None else price_to_nano(value, field=field)
