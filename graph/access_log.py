"""The access log: one `pantheon.access` line per HTTP request, per WebSocket connection, and per
GraphQL operation run over a WebSocket (at its end, whatever ended it). docs/operations.md,
*Access log*, lists the fields.

What a line may carry is fixed here: the method, the path (never the query string, so
`/graphql?token=…` leaves no token), the status, the duration, the user id authentication
already found, the operation's type, root fields and name as the parsed document spells them
(GraphQL names: they cannot break a line), and error codes. Never headers, variables or bodies.

Cheap by construction: the middleware binds one small record per request; the GraphQL extension
and the few places that refuse a request before GraphQL runs fill it in; nothing is queried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from graphql import FieldNode, OperationDefinitionNode
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from graph.errors import UNAVAILABLE_CODE, InfraFault, no_infra_fault
from graph.request_context import (
    AccessRecord,
    bind_access_record,
    current_access_record,
    reset_access_record,
)

log = logging.getLogger("pantheon.access")

# Requests a load balancer or a browser repeats all day: logged at DEBUG only.
QUIET_PREFIXES = ("/api/v1/health", "/api/v1/ready", "/graphql/static/")


def emit(
    record: AccessRecord,
    *,
    kind: str,
    target: str,
    status: int | None,
    started: float,
    level: int = logging.INFO,
    outcome: str | None = None,
) -> None:
    """One line. `kind` is the HTTP method, `WS` for a socket, `OP` for an operation over one."""
    if not log.isEnabledFor(level):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    fields: dict[str, Any] = {
        "kind": kind,
        "path": target,
        "status": status,
        "duration_ms": duration_ms,
        "user_id": record.user_id,
        "operation": ", ".join(record.operations) or None,
        "operation_name": ", ".join(record.operation_names) or None,
        "error_codes": list(record.error_codes),
    }
    if outcome is not None:
        fields["outcome"] = outcome
    text = (
        f"{kind} {target} {status if status is not None else '-'} "
        f"{fields['operation'] or '-'} name={fields['operation_name'] or '-'} "
        f"user={record.user_id or '-'} duration_ms={duration_ms} "
        f"codes={','.join(record.error_codes) or '-'}"
    )
    if outcome is not None:
        text += f" outcome={outcome}"
    log.log(level, "%s", text, extra={"access": fields})


class AccessLogMiddleware:
    """Times each HTTP request and WebSocket connection and logs it once it is over (the
    response sent, the socket closed). Installed inside RequestIdMiddleware, so the line carries
    the request id."""

    def __init__(self, app: ASGIApp, *, infra_fault: InfraFault = no_infra_fault) -> None:
        self.app = app
        self.infra_fault = infra_fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        record = AccessRecord(socket=kind == "websocket")
        token = bind_access_record(record)
        status: int | None = None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.close":
                status = message.get("code", 1000)
            elif message["type"] == "websocket.accept" and status is None:
                status = 101
            await send(message)

        async def receiving() -> Message:
            nonlocal status
            message = await receive()
            if message["type"] == "websocket.disconnect":
                status = message.get("code", 1000)
            return message

        path: str = scope.get("path", "")
        try:
            await self.app(scope, receiving if kind == "websocket" else receive, sending)
        except Exception as error:
            if kind == "http" and status is None:
                # RequestIdMiddleware answers it, as it decides the same way.
                unavailable = self.infra_fault(error) is not None
                status = 503 if unavailable else 500
                record.add_codes([UNAVAILABLE_CODE if unavailable else "INTERNAL_SERVER_ERROR"])
            raise
        finally:
            reset_access_record(token)
            quiet = path.startswith(QUIET_PREFIXES)
            emit(
                record,
                kind="WS" if kind == "websocket" else scope.get("method", "-"),
                target=path,
                status=status,
                started=started,
                level=logging.DEBUG if quiet else logging.INFO,
            )


class AccessLogExtension(SchemaExtension):
    """Notes each operation's type, root fields, name, user and error codes in the request's
    record; an operation over a WebSocket logs its own line at its end (the socket's record
    gives it the user).

    Listed before ErrorCodes in the schema, so its `on_operation` resumes after ErrorCodes
    coded the result."""

    def __init__(self) -> None:
        self._stream_codes: list[str] = []

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        request_record = current_access_record()
        # Over a socket (or outside any request) the operation logs its own line.
        own_line = request_record is None or request_record.socket
        record = request_record
        if record is None or record.socket:
            record = AccessRecord(user_id=record.user_id if record is not None else None)
        cancelled = False
        try:
            yield
        except BaseException:
            # GeneratorExit or CancelledError: the client completed it, or the socket closed.
            cancelled = True
            raise
        finally:
            self._describe(record)
            if own_line:
                failed = bool(record.error_codes)
                outcome = "cancelled" if cancelled else "failed" if failed else "completed"
                emit(
                    record,
                    kind="OP",
                    target="/graphql",
                    status=None,
                    started=started,
                    outcome=outcome,
                )

    def on_stream_result(self, result: Any) -> Iterator[None]:
        yield
        # ErrorCodes coded the result on entering this hook. A stream's results are not the
        # execution context's result: their codes are collected one by one.
        self._stream_codes.extend(c for c in _codes(result) if c not in self._stream_codes)

    def _describe(self, record: AccessRecord) -> None:
        context = self.execution_context
        viewer = getattr(context.context, "viewer", None)
        if viewer is not None and record.user_id is None:
            record.user_id = str(viewer.id)
        operation = _operation(context.graphql_document, context.operation_name)
        if operation is not None:
            fields = [
                selection.name.value
                for selection in operation.selection_set.selections
                if isinstance(selection, FieldNode)
            ]
            unique = list(dict.fromkeys(fields))
            record.operations.append(f"{operation.operation.value} {' '.join(unique)}".strip())
            if operation.name is not None:
                record.operation_names.append(operation.name.value)
        record.add_codes(_codes(context.result))
        record.add_codes(self._stream_codes)


def _operation(document: Any, name: str | None) -> OperationDefinitionNode | None:
    if document is None:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        operations = [o for o in operations if o.name is not None and o.name.value == name]
    return operations[0] if len(operations) == 1 else None


def _codes(result: Any) -> list[str]:
    codes: list[str] = []
    for error in getattr(result, "errors", None) or ():
        code = (getattr(error, "extensions", None) or {}).get("code")
        if isinstance(code, str) and code not in codes:
            codes.append(code)
    return codes
