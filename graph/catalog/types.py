from __future__ import annotations

import uuid
from decimal import Decimal

import strawberry
from strawberry import relay

from domain import records
from domain.money import nano_to_usd
from graph.context import Info
from graph.loaders import load_existing


@strawberry.type
class ModelPrice:
    input_usd_per_million_tokens: Decimal
    output_usd_per_million_tokens: Decimal


@strawberry.type(name="Model", description="the model catalog")
class ModelType:
    alias: str
    provider: str
    price: ModelPrice | None = strawberry.field(description="null: unpriced")
    max_output_tokens: int
    context_window: int

    @classmethod
    def from_record(cls, model: records.Model) -> ModelType:
        price = None
        if model.input_nano_per_mtok is not None and model.output_nano_per_mtok is not None:
            price = ModelPrice(
                input_usd_per_million_tokens=nano_to_usd(model.input_nano_per_mtok),
                output_usd_per_million_tokens=nano_to_usd(model.output_nano_per_mtok),
            )
        return cls(
            alias=model.alias,
            provider=model.provider,
            price=price,
            max_output_tokens=model.max_output_tokens,
            context_window=model.context_window,
        )


@strawberry.type(name="Agent")
class AgentNode(relay.Node):
    node_id: relay.NodeID[str]
    key: str = strawberry.field(description="the @tag")
    name: str
    description: str
    enabled: bool
    _model_id: strawberry.Private[uuid.UUID]
    _system_prompt: strawberry.Private[str]

    @classmethod
    def from_record(cls, agent: records.Agent) -> AgentNode:
        return cls(
            node_id=str(agent.id),
            key=agent.key,
            name=agent.name,
            description=agent.description,
            enabled=agent.enabled,
            _model_id=agent.model_id,
            _system_prompt=agent.system_prompt,
        )

    @strawberry.field
    async def model(self, info: Info) -> ModelType:
        model = await load_existing(info.context.loaders.model, self._model_id, "agent model")
        return ModelType.from_record(model)

    @strawberry.field(description="ADMIN only (null for others)")
    def system_prompt(self, info: Info) -> str | None:
        viewer = info.context.viewer
        return self._system_prompt if viewer is not None and viewer.is_admin else None
