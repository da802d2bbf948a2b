"""Reading a provider's usage export for `pantheon ledger reconcile`: OpenAI's organization usage
API for completions (`GET /v1/organization/usage/completions?bucket_width=1d&group_by=model`),
saved as JSON — one page, or a list of pages.

The fields used (everything else is ignored):

- `data[]`: buckets (`"object": "bucket"`), each with `start_time` and `end_time` (Unix seconds);
  a bucket must lie within one UTC day (ask with `start_time` at 00:00 UTC: a `1d` bucket then
  is a UTC day);
- `data[].results[]` (`"object": "organization.usage.completions.result"`): `model` (present
  only with `group_by=model`, which reconciliation needs), `input_tokens` (cached tokens
  included, as the ledger's prompt tokens are), `output_tokens`, `num_model_requests`.

Exports carry tokens, not money: costs are compared through tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from domain.ledger import DayModelTokens

RESULT_OBJECT = "organization.usage.completions.result"


class UsageExportError(Exception):
    """The file is not an export this reader understands; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageExport:
    start: datetime  # the earliest bucket's start
    end: datetime  # the latest bucket's end
    rows: tuple[DayModelTokens, ...]


def read_usage_export(path: Path) -> UsageExport:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageExportError(f"cannot read {path}: {error}") from None
    return parse_usage_export(document)


def parse_usage_export(document: Any) -> UsageExport:
    pages = document if isinstance(document, list) else [document]
    buckets = [bucket for page in pages for bucket in _field(page, "data", list, "page")]
    if not buckets:
        raise UsageExportError("the export has no buckets")
    rows: list[DayModelTokens] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for bucket in buckets:
        start = _time(_field(bucket, "start_time", int, "bucket"))
        end = _time(_field(bucket, "end_time", int, "bucket"))
        if end <= start or (end - timedelta(microseconds=1)).date() != start.date():
            raise UsageExportError(
                f"bucket {start.isoformat()}..{end.isoformat()} is not within one UTC day; "
                "export with bucket_width=1d and start_time at 00:00 UTC"
            )
        starts.append(start)
        ends.append(end)
        for result in _field(bucket, "results", list, "bucket"):
            rows.append(_row(result, start))
    return UsageExport(start=min(starts), end=max(ends), rows=tuple(rows))


def _row(result: Any, start: datetime) -> DayModelTokens:
    if not isinstance(result, dict) or result.get("object") != RESULT_OBJECT:
        raise UsageExportError(f"a result is not an {RESULT_OBJECT!r}")
    model = result.get("model")
    if not isinstance(model, str) or not model:
        raise UsageExportError("a result has no model: export with group_by=model")
    return DayModelTokens(
        day=start.date(),
        model=model,
        input_tokens=_field(result, "input_tokens", int, "result"),
        output_tokens=_field(result, "output_tokens", int, "result"),
        requests=_field(result, "num_model_requests", int, "result"),
    )


def _field(container: Any, name: str, kind: type, what: str) -> Any:
    value = container.get(name) if isinstance(container, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UsageExportError(f"a {what} lacks {name!r} ({kind.__name__})")
    return value


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
