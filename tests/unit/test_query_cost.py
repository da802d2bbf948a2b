"""The static cost model (graph/cost/model.py) on its own: bounds, fragments, ids, clamping."""

from __future__ import annotations

from graphql import (
    GraphQLList,
    GraphQLNonNull,
    build_schema,
    get_named_type,
    is_composite_type,
    parse,
)

from graph.app import cost_model
from graph.cost.model import CostModel, operation_cost
from graph.schema import build_schema as build_pantheon_schema
from infra.settings import Settings

SCHEMA = build_pantheon_schema()._schema


def cost(query: str, model: CostModel | None = None, **variables: object) -> int:
    chosen = model or cost_model(Settings())
    return operation_cost(SCHEMA, parse(query), chosen, variables=variables).total


def test_every_list_of_objects_has_a_declared_bound() -> None:
    bounds = cost_model(Settings()).list_bounds
    unbounded = []
    for type_ in SCHEMA.type_map.values():
        if type_.name.startswith("__") or not hasattr(type_, "fields"):
            continue
        for name, field in type_.fields.items():
            outer = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if not isinstance(outer, GraphQLList) or not is_composite_type(
                get_named_type(field.type)
            ):
                continue
            if name in ("edges", "nodes") and type_.name.endswith("Connection"):
                continue  # multiplied by the connection's first/last
            if f"{type_.name}.{name}" not in bounds:
                unbounded.append(f"{type_.name}.{name}")
    assert unbounded == []


def test_turn_messages_count_the_max_agents_per_turn() -> None:
    query = '{ turn(id: "x") { messages { content } } }'

    assert cost(query, cost_model(Settings(max_agents_per_turn=3))) == 1 + 1 + 3 * 1
    assert cost(query, cost_model(Settings(max_agents_per_turn=8))) == 1 + 1 + 8 * 1


def test_lists_of_scalars_cost_one() -> None:
    query = '{ turn(id: "x") { contextAudit { modelAliases } } }'

    assert cost(query) == 3


def test_a_page_beyond_the_max_counts_as_the_max_page() -> None:
    # The resolver refuses first > max page size; the cost never exceeds what could be served.
    huge = "{ sessions(first: 1000000) { edges { node { id } } } }"
    largest = "{ sessions(first: 100) { edges { node { id } } } }"

    assert cost(huge) == cost(largest) == 1 + 1 + 100 * 2


def test_last_multiplies_like_first() -> None:
    assert cost("{ sessions(last: 3) { edges { node { id } } pageInfo { hasNextPage } } }") == (
        1 + (1 + 3 * 2) + (1 + 1)
    )


def test_spreads_of_spreads_are_costed_without_expanding_them() -> None:
    # Each fragment spreads the next twice: 2**24 copies of `me { id }` if expanded naively.
    depth = 24
    fragments = "\n".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(depth)
    )
    query = f"{{ ...F0 }}\n{fragments}\nfragment F{depth} on Query {{ me {{ id }} }}"

    assert cost(query) == 2**depth * 2


def test_introspection_lists_count_once_and_schema_fields_are_counted() -> None:
    model = cost_model(Settings())
    two = operation_cost(
        SCHEMA, parse("{ a: __schema { types { name } } b: __schema { types { name } } }"), model
    )

    assert two.schema_fields == 2
    assert two.total == 2 * (1 + 1 + 1)


IDS_SCHEMA = build_schema("type Query { nodes(ids: [ID!]!): [Thing]! } type Thing { name: String }")


def test_a_list_taking_ids_costs_one_per_id() -> None:
    model = CostModel(max_cost=100, default_page_size=20, max_page_size=100)
    literal = parse('{ nodes(ids: ["a", "b", "c"]) { name } }')
    variable = parse("query($ids: [ID!]!) { nodes(ids: $ids) { name } }")

    assert operation_cost(IDS_SCHEMA, literal, model).total == 1 + 3
    assert operation_cost(IDS_SCHEMA, variable, model, variables={"ids": ["a"] * 7}).total == 8


def test_the_named_operation_is_the_one_costed() -> None:
    document = "query Cheap { me { id } } query Dear { sessions { edges { node { id } } } }"
    model = cost_model(Settings())

    assert operation_cost(SCHEMA, parse(document), model, operation_name="Cheap").total == 2
    assert operation_cost(SCHEMA, parse(document), model, operation_name="Dear").total == 42


async def test_the_cost_limit_leaves_the_validation_cache_hitting() -> None:
    # Validation rules made per request (e.g. a cost rule built from settings each time) would
    # key the cache differently on every request; the cost extension adds no rule at all.
    from strawberry.extensions.validation_cache import _get_validate_cache

    schema = build_pantheon_schema(
        cost_model=CostModel(max_cost=3, default_page_size=20, max_page_size=100)
    )
    cache = _get_validate_cache(128)
    query = "{ __typename cacheProbe: __typename }"
    await schema.execute(query)
    hits = cache.cache_info().hits

    result = await schema.execute(query)

    assert result.errors is None
    assert cache.cache_info().hits == hits + 1


PAGED_LIST_SCHEMA = build_schema(
    "type Query { things(first: Int): [Thing!]! } type Thing { a: Int }"
)


def test_a_plain_list_taking_first_counts_its_page() -> None:
    model = CostModel(max_cost=100, default_page_size=20, max_page_size=100)

    assert operation_cost(PAGED_LIST_SCHEMA, parse("{ things(first: 4) { a } }"), model).total == 5
    assert operation_cost(PAGED_LIST_SCHEMA, parse("{ things { a } }"), model).total == 21
