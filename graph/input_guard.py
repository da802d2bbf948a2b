"""Refuses, before a query or mutation executes, any input text no database column can store.

PostgreSQL rejects NUL in text, and a lone surrogate (JSON's "\\ud800" decodes to one) has no
UTF-8 encoding on either database: left alone, each would fail as an unexpected error deep in a
write. One check here covers every text input of every field, in variables and in literals,
and names the input at fault (`extensions.field`, e.g. `input.title`). The rule itself is the
domain's (`domain.validation.unstorable_character`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    BREAK,
    ArgumentNode,
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    ListValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableDefinitionNode,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension

from domain.validation import unstorable_character

Finding = tuple[str, str]  # (the input's path, the character found)


class StorableInput(SchemaExtension):
    """Sets the operation's result to one BAD_USER_INPUT error instead of executing it.

    (Strawberry's subscription path does not honour a pre-set result; subscriptions take only
    ids and a sequence number, which never reach a text column.)"""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        finding = in_variables(context.variables) or in_literals(
            context.graphql_document, context.query
        )
        if finding is not None:
            context.result = ExecutionResult(data=None, errors=[_error(*finding)])
        yield


def in_variables(variables: Mapping[str, Any] | None) -> Finding | None:
    if not isinstance(variables, Mapping):  # None, or not a map: coercion will say so
        return None
    for name, value in variables.items():
        found = _in_value(value, name)
        if found is not None:
            return found
    return None


def _in_value(value: object, path: str) -> Finding | None:
    # Iterative: variables nest as deep as the JSON decoder allows, deeper than the call stack
    # has room for at this point of a request.
    pending: list[tuple[object, str]] = [(value, path)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            character = unstorable_character(item)
            if character is not None:
                return where, character
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                pending.append((child, f"{where}.{key}"))
                pending.append((str(key), f"{where} (a key)"))
        elif isinstance(item, list):
            pending.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def in_literals(document: DocumentNode | None, query: str | None) -> Finding | None:
    # In a document's source only an escape (\u0000, \u{0}) can produce NUL: the lexer refuses
    # the raw character, and lone surrogates escaped or raw. No escape, nothing to walk.
    if document is None or (query is not None and "\\u" not in query):
        return None
    visitor = _LiteralVisitor()
    visit(document, visitor)
    return visitor.found


class _LiteralVisitor(Visitor):
    found: Finding | None = None

    def enter_argument(self, node: ArgumentNode, *_: object) -> object:
        self.found = _in_literal(node.value, node.name.value)
        return BREAK if self.found else None

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: object) -> object:
        if node.default_value is not None:
            self.found = _in_literal(node.default_value, node.variable.name.value)
        return BREAK if self.found else None


def _in_literal(node: ValueNode, path: str) -> Finding | None:
    pending: list[tuple[ValueNode, str]] = [(node, path)]  # iterative, as `_in_value`
    while pending:
        item, where = pending.pop()
        if isinstance(item, StringValueNode):
            found = _in_value(item.value, where)
            if found is not None:
                return found
        elif isinstance(item, ObjectValueNode):
            pending.extend((f.value, f"{where}.{f.name.value}") for f in reversed(item.fields))
        elif isinstance(item, ListValueNode):
            pending.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item.values))))
    return None


def _error(path: str, character: str) -> GraphQLError:
    return GraphQLError(
        f"{path} must not contain {character}: no database can store it",
        extensions={"code": "BAD_USER_INPUT", "field": path},
    )
