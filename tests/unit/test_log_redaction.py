"""The log handler keeps caller content out (infra/logging.py) unless PANTHEON_LOG_CONTENT=true."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from domain.logs import CARRIES_CONTENT
from infra.logging import HIDDEN, configure_logging

SECRET = "the user's secret prompt"
log = logging.getLogger("pantheon.test.redaction")


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = handlers
    root.setLevel(level)


def fail_with_input(value: str) -> None:
    try:
        int(value)  # ValueError: invalid literal for int() with base 10: '<value>'
    except ValueError as error:
        raise RuntimeError(f"could not parse {value}") from error


def log_a_failure() -> None:
    try:
        fail_with_input(SECRET)
    except RuntimeError:
        log.exception("request failed")
    log.debug("raw model output: %s", SECRET, extra=CARRIES_CONTENT)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_tracebacks_keep_their_frames_and_types_but_not_their_messages(
    output: io.StringIO, fmt: str
) -> None:
    configure_logging("DEBUG", fmt, stream=output)

    log_a_failure()

    logged = output.getvalue()
    assert SECRET not in logged
    text = json.loads(logged.splitlines()[0])["exc"] if fmt == "json" else logged
    assert "in fail_with_input" in text
    assert f"builtins.ValueError: {HIDDEN}" in text
    assert f"builtins.RuntimeError: {HIDDEN}" in text
    assert "direct cause" in text


def test_with_content_on_messages_and_content_records_are_logged(output: io.StringIO) -> None:
    configure_logging("DEBUG", "text", content=True, stream=output)

    log_a_failure()

    logged = output.getvalue()
    assert f"RuntimeError: could not parse {SECRET}" in logged
    assert f"raw model output: {SECRET}" in logged
    assert HIDDEN not in logged
