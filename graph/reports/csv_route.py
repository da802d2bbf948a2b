"""`GET /api/v1/admin/cost-report.csv`: the cost report as CSV, for spreadsheets and scripts.

Same parameters as `CostReportInput`, in the query string (lists comma-separated or repeated):
`?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z&groupBy=DAY,MODEL&agentKeys=qwen`.
The same use case computes it as the GraphQL field; the rows are encoded as they stream.
Errors are JSON bodies shaped like GraphQL errors (401, 403, 400), before any CSV is sent.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.datastructures import QueryParams

from domain import reports
from domain.enums import BillingCategory, CallKind
from domain.errors import BadUserInput, Forbidden, PantheonError, Unauthenticated
from domain.money import nano_to_usd
from domain.services.users import authenticate
from graph.errors import error_payload
from graph.ids import global_id
from graph.reports.api import user_uuids
from graph.runtime import Runtime

PATH = "/api/v1/admin/cost-report.csv"
PARAMETERS = frozenset(
    {
        "from",
        "to",
        "groupBy",
        "userIds",
        "agentKeys",
        "modelAliases",
        "callKinds",
        "billingCategories",
    }
)
DIMENSION_COLUMNS = {
    reports.CostDimension.USER: ("user_id", "user_handle"),
    reports.CostDimension.AGENT: ("agent_key",),
    reports.CostDimension.MODEL: ("model_alias",),
    reports.CostDimension.CALL_KIND: ("call_kind",),
    reports.CostDimension.BILLING_CATEGORY: ("billing_category",),
    reports.CostDimension.DAY: ("day",),
}
TOTALS_COLUMNS = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "billable_cost_usd",
    "overhead_cost_usd",
    "unpriced_calls",
    "refused_calls",
)
_STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403}
_ROWS_PER_CHUNK = 500

E = TypeVar("E", bound=StrEnum)


def register_cost_report_csv(app: FastAPI) -> None:
    app.add_api_route(PATH, cost_report_csv, methods=["GET"], include_in_schema=False)


async def cost_report_csv(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        await _require_admin(runtime, request.headers.get("authorization"))
        query = query_from_params(request.query_params)
        report = await reports.cost_report(
            runtime.report_reads, query, max_rows=reports.MAX_CSV_ROWS
        )
        handles = await _handles(runtime, report)
    except PantheonError as error:
        headers = {"WWW-Authenticate": "Bearer"} if error.code == "UNAUTHENTICATED" else None
        return JSONResponse(
            error_payload(error.message, error.code),
            status_code=_STATUS.get(error.code, 400),
            headers=headers,
        )
    filename = f"cost-report-{query.range.start:%Y%m%dT%H%M%SZ}-{query.range.end:%Y%m%dT%H%M%SZ}"
    return StreamingResponse(
        csv_chunks(report, handles),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


async def _require_admin(runtime: Runtime, authorization: str | None) -> None:
    viewer = await authenticate(runtime.reads, authorization)
    if viewer is None:
        raise Unauthenticated("send a valid token as `Authorization: Bearer <token>`")
    if not viewer.is_admin:
        raise Forbidden("the cost report is for admins")


# --- parameters ---------------------------------------------------------------------------


def query_from_params(params: QueryParams) -> reports.CostReportQuery:
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise BadUserInput(f"unknown parameters: {', '.join(unknown)}")
    return reports.cost_report_query(
        start=_datetime(params, "from"),
        end=_datetime(params, "to"),
        dimensions=_enums(params, "groupBy", reports.CostDimension) or [],
        filters=reports.usage_filters(
            user_ids=user_uuids(_list(params, "userIds")),
            agent_keys=_list(params, "agentKeys"),
            model_aliases=_list(params, "modelAliases"),
            call_kinds=_enums(params, "callKinds", CallKind),
            billing_categories=_enums(params, "billingCategories", BillingCategory),
        ),
    )


def _datetime(params: QueryParams, name: str) -> datetime:
    raw = params.get(name)
    if not raw:
        raise BadUserInput(f"{name} is required (ISO 8601, e.g. 2026-01-01T00:00:00Z)")
    for candidate in (raw, _unescaped_plus(raw)):
        try:
            return datetime.fromisoformat(candidate)
        except ValueError:
            continue
    raise BadUserInput(f"{name} is not an ISO 8601 date-time: {raw!r}")


def _unescaped_plus(raw: str) -> str:
    # An unencoded '+' of a UTC offset arrives as a space: '...T00:00:00 01:00'.
    head, space, offset = raw.rpartition(" ")
    return f"{head}+{offset}" if space and "T" in head else raw


def _list(params: QueryParams, name: str) -> list[str] | None:
    if name not in params:
        return None
    return [part.strip() for raw in params.getlist(name) for part in raw.split(",") if part.strip()]


def _enums(params: QueryParams, name: str, enum: type[E]) -> list[E] | None:
    values = _list(params, name)
    if values is None:
        return None
    try:
        return [enum(value) for value in values]
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise BadUserInput(f"{name} takes {allowed}") from None


# --- encoding -----------------------------------------------------------------------------


async def _handles(runtime: Runtime, report: reports.CostReport) -> dict[uuid.UUID, str]:
    ids = {row.user_id for row in report.rows if row.user_id is not None}
    if not ids:
        return {}
    return {user.id: user.handle for user in await runtime.reads.users_by_ids(sorted(ids))}


def header(group_by: Sequence[reports.CostDimension]) -> list[str]:
    return [column for d in group_by for column in DIMENSION_COLUMNS[d]] + list(TOTALS_COLUMNS)


def csv_chunks(report: reports.CostReport, handles: dict[uuid.UUID, str]) -> Iterator[str]:
    """The header, then the rows, a few hundred per chunk; money as plain decimal text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header(report.query.group_by))
    encode = _row_encoder(report.query.group_by, handles)
    for number, row in enumerate(report.rows, start=1):
        writer.writerow(encode(row))
        if number % _ROWS_PER_CHUNK == 0:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _row_encoder(
    group_by: Sequence[reports.CostDimension], handles: dict[uuid.UUID, str]
) -> Callable[[reports.CostReportRow], list[str | int]]:
    def encode(row: reports.CostReportRow) -> list[str | int]:
        cells: list[str | int] = []
        for dimension in group_by:
            value = row.value(dimension)
            if dimension is reports.CostDimension.USER:
                cells += _user_cells(value, handles)
            else:
                cells.append("" if value is None else spreadsheet_safe(str(value)))
        totals = row.totals
        return [
            *cells,
            totals.calls,
            totals.prompt_tokens,
            totals.completion_tokens,
            _usd(totals.cost_nano),
            _usd(totals.billable_nano),
            _usd(totals.overhead_nano),
            totals.unpriced_calls,
            totals.refused_calls,
        ]

    return encode


# A text cell starting with one of these is a formula to spreadsheet programs (an agent key
# may start with "-", e.g. "-A1"); OWASP's advice: prefix it with a quote, shown as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def _user_cells(value: object, handles: dict[uuid.UUID, str]) -> list[str | int]:
    if not isinstance(value, uuid.UUID):
        return ["", ""]
    return [global_id("User", value), handles.get(value, "")]


def _usd(nano: int) -> str:
    return format(nano_to_usd(nano), "f")
