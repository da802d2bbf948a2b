"""The schema, assembled from per-feature query and mutation classes."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import strawberry
from graphql import GraphQLError
from opentelemetry.trace import Tracer
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.types.base_scalars import DecimalDefinition
from strawberry.tools import merge_types
from strawberry.types.execution import ExecutionContext

from graph.access_log import AccessLogExtension
from graph.catalog.api import CatalogMutations, CatalogQueries
from graph.catalog.types import AgentNode
from graph.cost.api import RateLimitQueries
from graph.cost.model import CostModel, QueryCostLimit
from graph.errors import ErrorCodes
from graph.input_guard import StorableInput
from graph.node import NodeQueries
from graph.operation_metrics import OperationMetrics
from graph.operation_timeout import timed_out, within_timeout
from graph.rate_limits import SocketOperationLimit
from graph.reports.api import ReportQueries
from graph.sessions.api import SessionMutations, SessionQueries
from graph.sessions.types import SessionNode
from graph.subscriptions.api import Subscriptions
from graph.subscriptions.types import EVENT_TYPES
from graph.summaries.types import SessionSummaryNode
from graph.tracing import OperationSpan
from graph.turns.api import TurnMutations, TurnQueries
from graph.turns.types import AgentMessageNode, TurnNode
from graph.turns.usage_types import UsageRecordNode
from graph.users.api import UserMutations, UserQueries
from graph.users.types import UserNode

Query = merge_types(
    "Query",
    (
        NodeQueries,
        UserQueries,
        CatalogQueries,
        SessionQueries,
        TurnQueries,
        ReportQueries,
        RateLimitQueries,
    ),
)
Mutation = merge_types(
    "Mutation", (SessionMutations, TurnMutations, CatalogMutations, UserMutations)
)


# Money leaves as fixed-point text: Strawberry's `str()` would send 10 USD as "1E+1" and one
# nano-USD as "1E-9". Parsing stays Strawberry's.
PlainDecimal = dataclasses.replace(
    DecimalDefinition, serialize=lambda value: format(value, "f"), implementation=None
)


class PantheonSchema(strawberry.Schema):
    operation_timeout_seconds: float = 10.0

    async def _execute_operation(  # type: ignore[override]
        self, execution_context: ExecutionContext, *args: Any, **kwargs: Any
    ) -> Any:
        # Strawberry runs every query and mutation through this method, whatever the transport
        # (`execute` for HTTP, `stream` for WebSocket), and subscriptions never: the one place
        # for the operation timeout (tests/integration/test_abuse_resistance.py holds it to that).
        seconds = self.operation_timeout_seconds
        result = await within_timeout(
            seconds,
            lambda: super(PantheonSchema, self)._execute_operation(
                execution_context, *args, **kwargs
            ),
        )
        if result is None:
            result = timed_out(seconds)
            execution_context.result = result
        return result

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ErrorCodes logs what is unexpected, with the request id; expected errors are not noise.
        return None


DEFAULT_COST_MODEL = CostModel(max_cost=5_000, default_page_size=20, max_page_size=100)


def build_schema(
    *,
    max_depth: int = 12,
    max_aliases: int = 30,
    max_tokens: int = 2_000,
    cost_model: CostModel = DEFAULT_COST_MODEL,
    operation_timeout_seconds: float = 10.0,
    tracer: Tracer | None = None,
) -> Any:
    """`tracer` (tracing on) adds a span per operation (graph/tracing.py)."""
    limit_rules = [
        *QueryDepthLimiter(max_depth=max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=max_aliases).validation_rules,
    ]
    schema = PantheonSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscriptions,
        scalar_overrides={Decimal: PlainDecimal},
        types=[
            UserNode,
            AgentNode,
            SessionNode,
            TurnNode,
            AgentMessageNode,
            UsageRecordNode,
            SessionSummaryNode,
            *EVENT_TYPES,  # subscriptions yield these through the TurnEvent interface
        ],
        # Factories, not instances: an instance would be shared by concurrent operations.
        extensions=[
            # First, so it ends last: after ErrorCodes has coded the errors it records.
            *([lambda: OperationSpan(tracer)] if tracer is not None else []),
            OperationMetrics,  # before ErrorCodes: it counts the codes ErrorCodes assigned
            AccessLogExtension,  # first: it reads the codes ErrorCodes gives on the way out
            ErrorCodes,
            SocketOperationLimit,
            StorableInput,  # text no database can store (NUL...) is refused before executing
            # The same documents arrive again and again: validate each once. (ParserCache is left
            # out: with it, a syntax error escapes ErrorCodes and loses its code.)
            ValidationCache,
            # The limits' rules are made once: each limiter makes a new rule class, and new
            # rules per request would make every request miss the validation cache.
            lambda: AddValidationRules(limit_rules),
            lambda: MaxTokensLimiter(max_token_count=max_tokens),
            # After validation, before execution (it needs the variables): see graph/cost/model.py.
            lambda: QueryCostLimit(cost_model),
        ],
    )
    schema.operation_timeout_seconds = operation_timeout_seconds
    return schema
