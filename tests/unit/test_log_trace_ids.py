"""JSON log lines carry the current span's trace and span ids when tracing is on, none when off."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from infra.logging import configure_logging

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("INFO", "json", stream=buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_inside_a_span_carries_its_ids(json_log: io.StringIO) -> None:
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        logging.getLogger("pantheon.test").info("inside")

    (line,) = lines(json_log)
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == "b7ad6b7169203331"


def test_without_tracing_there_are_no_ids(json_log: io.StringIO) -> None:
    logging.getLogger("pantheon.test").info("outside")

    (line,) = lines(json_log)
    assert "trace_id" not in line
    assert "span_id" not in line


def test_an_access_lines_fields_are_keys_of_its_own(json_log: io.StringIO) -> None:
    fields = {"kind": "POST", "status": 200, "error_codes": []}
    logging.getLogger("pantheon.access").info("POST / 200", extra={"access": fields})

    (line,) = lines(json_log)
    assert (line["kind"], line["status"], line["error_codes"]) == ("POST", 200, [])
    assert line["message"] == "POST / 200"
