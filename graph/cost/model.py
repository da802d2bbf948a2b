"""The static cost of an operation, computed before it executes; over the limit nothing runs.

The depth, alias and token limits each see one dimension of a document; none of them sees
multiplication (`sessions(first:100) { turns(first:100) { messages } }` is shallow, short and
alias-free, yet asks for 100 x 100 x 8 objects). The cost model (docs/query_cost.md), after
GitHub's node limit and Shopify's calculated cost:

- every field costs 1;
- the `edges` / `nodes` of a connection cost `first` (or `last`, the default page size when both
  are absent, at most the max page size) times what is selected under them;
- a list of objects without those arguments costs its declared bound (`CostModel.list_bounds`,
  e.g. `Turn.messages` ≤ the max agents per turn) times what is under it, or the number of
  `ids` when the field takes an `ids` list; lists of scalars and enums cost 1;
- introspection lists count once, but an operation may hold one `__schema` at most.

Fragments (named and inline) are costed where they are spread; an abstract selection sums its
type conditions (an upper bound). Variables for `first`/`last`/`ids` are read from the request.

It runs in `on_execute`, i.e. after validation (so the document is known to be valid) and not as a
validation rule: the cost depends on variables, which validation never sees, and the validation
cache (graph/schema.py) stays keyed by the document alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLCompositeType,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    is_composite_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef, TypeNameMetaFieldDef
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType as StrawberryOperationType

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
CONNECTION_LIST_FIELDS = frozenset({"edges", "nodes"})
PAGE_ARGUMENTS = ("first", "last")


@dataclass(frozen=True, slots=True, kw_only=True)
class CostModel:
    """The limit and the bounds the cost is computed with; built from settings in graph/app.py."""

    max_cost: int
    default_page_size: int
    max_page_size: int
    # "Type.field" -> the most items that list can hold. A list of objects missing here counts
    # `default_list_bound` (tests/unit/test_query_cost.py checks the schema has none missing).
    list_bounds: Mapping[str, int] = field(default_factory=dict)
    default_list_bound: int = 100


@dataclass(frozen=True, slots=True)
class Cost:
    total: int
    schema_fields: int  # how many `__schema` the operation holds


class _Walker:
    def __init__(
        self,
        schema: GraphQLSchema,
        model: CostModel,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        defaults: Mapping[str, ValueNode],
    ) -> None:
        self.schema = schema
        self.model = model
        self.fragments = fragments
        self.variables = variables
        self.defaults = defaults
        # A fragment is costed once per (name, page size): spreads of spreads could otherwise
        # expand exponentially (`fragment A { ...B ...B }`, `fragment B { ...C ...C }`, ...).
        self.memo: dict[tuple[str, int | None], Cost] = {}
        self.in_progress: set[str] = set()

    def selection_set(
        self, selections: SelectionSetNode, parent: GraphQLCompositeType, page: int | None
    ) -> Cost:
        total = 0
        schemas = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                cost = self.field(selection, parent, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = parent
                if selection.type_condition is not None:
                    named = self.schema.get_type(selection.type_condition.name.value)
                    if not is_composite_type(named):
                        continue
                    condition = named  # type: ignore[assignment]
                cost = self.selection_set(selection.selection_set, condition, page)
            elif isinstance(selection, FragmentSpreadNode):
                cost = self.spread(selection.name.value, page)
            else:  # pragma: no cover - graphql-core has no other selection kind
                continue
            total += cost.total
            schemas += cost.schema_fields
        return Cost(total, schemas)

    def spread(self, name: str, page: int | None) -> Cost:
        key = (name, page)
        if key in self.memo:
            return self.memo[key]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.in_progress:  # invalid documents never get here
            return Cost(0, 0)
        condition = self.schema.get_type(fragment.type_condition.name.value)
        if not is_composite_type(condition):
            return Cost(0, 0)
        self.in_progress.add(name)
        try:
            cost = self.selection_set(fragment.selection_set, condition, page)  # type: ignore[arg-type]
        finally:
            self.in_progress.discard(name)
        self.memo[key] = cost
        return cost

    def field(self, node: FieldNode, parent: GraphQLCompositeType, page: int | None) -> Cost:
        name = node.name.value
        definition = self.definition(parent, name)
        is_schema = 1 if name == "__schema" else 0
        if definition is None or node.selection_set is None:
            return Cost(1, is_schema)
        named = get_named_type(definition.type)
        if not is_composite_type(named):
            return Cost(1, is_schema)
        child_page = self.page_size(node, definition)
        children = self.selection_set(node.selection_set, named, child_page)  # type: ignore[arg-type]
        times = self.multiplier(node, parent, definition, page)
        return Cost(1 + times * children.total, is_schema + children.schema_fields)

    def definition(self, parent: GraphQLCompositeType, name: str) -> GraphQLField | None:
        if name == "__typename":
            return TypeNameMetaFieldDef
        if parent is self.schema.query_type:
            if name == "__schema":
                return SchemaMetaFieldDef
            if name == "__type":
                return TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return parent.fields.get(name)
        return None  # a union selects only __typename and fragments

    def multiplier(
        self,
        node: FieldNode,
        parent: GraphQLCompositeType,
        definition: GraphQLField,
        page: int | None,
    ) -> int:
        if page is not None and node.name.value in CONNECTION_LIST_FIELDS:
            return page
        if not _is_list(definition.type):
            return 1
        if parent.name.startswith("__"):
            return 1  # introspection: __schema is limited to one instead
        own_page = self.page_size(node, definition)
        if own_page is not None:
            return own_page  # a plain list paged by first/last
        if "ids" in definition.args:
            ids = self.argument(node, "ids")
            return len(ids) if isinstance(ids, list) else self.model.max_page_size
        return self.model.list_bounds.get(
            f"{parent.name}.{node.name.value}", self.model.default_list_bound
        )

    def page_size(self, node: FieldNode, definition: GraphQLField) -> int | None:
        """The page a connection field asks for; None when the field is not a connection."""
        if not any(argument in definition.args for argument in PAGE_ARGUMENTS):
            return None
        sizes = [self.argument(node, argument) for argument in PAGE_ARGUMENTS]
        given = [size for size in sizes if isinstance(size, int) and not isinstance(size, bool)]
        size = max(given) if given else self.model.default_page_size
        # Beyond the max page size the resolver refuses the page (BAD_USER_INPUT).
        return min(max(size, 0), self.model.max_page_size)

    def argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return self.value(argument.value)
        return None

    def value(self, value: ValueNode) -> Any:
        if isinstance(value, VariableNode):
            variable = value.name.value
            if variable in self.variables:
                return self.variables[variable]
            default = self.defaults.get(variable)
            return None if default is None else self.value(default)
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, ListValueNode):
            return [self.value(item) for item in value.values]
        return None


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    model: CostModel,
    *,
    operation_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> Cost:
    """The cost of the document's operation (the named one, or the only one)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return Cost(0, 0)  # execution refuses an ambiguous or unknown operation anyway
    operation = operations[0]
    root = schema.get_root_type(operation.operation)
    if root is None:
        return Cost(0, 0)
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    defaults = {
        definition.variable.name.value: definition.default_value
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    walker = _Walker(schema, model, fragments, dict(variables or {}), defaults)
    return walker.selection_set(operation.selection_set, root, None)


def too_complex(message: str, cost: int, max_cost: int) -> GraphQLError:
    return GraphQLError(
        message, extensions={"code": QUERY_TOO_COMPLEX, "cost": cost, "maxCost": max_cost}
    )


class QueryCostLimit(SchemaExtension):
    """Refuses an operation over `CostModel.max_cost` (or with two `__schema`) before it runs,
    and puts its cost on `info.context.query_cost`. A fresh instance serves each operation."""

    def __init__(self, model: CostModel) -> None:
        self.model = model

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            cost = operation_cost(
                context.schema._schema,
                document,
                self.model,
                operation_name=context.operation_name,
                variables=context.variables,
            )
            if hasattr(context.context, "query_cost"):
                context.context.query_cost = cost.total
            error = self.refusal(cost)
            if error is not None:
                if context.operation_type is StrawberryOperationType.SUBSCRIPTION:
                    # Subscriptions ignore a preset result: raising here ends one with the error.
                    raise error
                # Queries and mutations skip execution when a result is already there.
                context.result = ExecutionResult(data=None, errors=[error])
        yield

    def refusal(self, cost: Cost) -> GraphQLError | None:
        if cost.schema_fields > 1:
            return too_complex(
                f"an operation may hold one `__schema` at most (this one has {cost.schema_fields})",
                cost.total,
                self.model.max_cost,
            )
        if cost.total > self.model.max_cost:
            return too_complex(
                f"the query costs {cost.total}, more than the maximum of {self.model.max_cost}: "
                "ask for smaller pages (first/last) or fewer nested lists",
                cost.total,
                self.model.max_cost,
            )
        return None


__all__ = ["QUERY_TOO_COMPLEX", "Cost", "CostModel", "QueryCostLimit", "operation_cost"]
