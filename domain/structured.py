"""Strict JSON from LLMs: parse with a Pydantic model, or say why not in one short line.

Every place that reads an LLM's output as data goes through `parse_strict` (F48). A failure logs
one WARNING naming the parser and the first error's location and type, at most ~200 characters
(F52); the full validation text only at DEBUG. Raw model output is never logged above DEBUG,
and at DEBUG only with PANTHEON_LOG_CONTENT=true (the record is marked as carrying content).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from domain.logs import CARRIES_CONTENT

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("pantheon.llm.parsing")

MAX_REASON_CHARS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Parsed(Generic[M]):
    value: M | None
    reason: str | None  # why it failed, trimmed; None when parsed

    @property
    def ok(self) -> bool:
        return self.value is not None


def parse_strict(model: type[M], raw: str, *, parser: str) -> Parsed[M]:
    try:
        return Parsed(value=model.model_validate_json(raw), reason=None)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        reason = trim(f"invalid output at {where}: {first['type']}")
        log.warning("%s: %s; using the fallback", parser, reason)
        log.debug(
            "%s: full validation error: %s; raw output: %r",
            parser,
            error,
            raw,
            extra=CARRIES_CONTENT,  # the model's output
        )
        return Parsed(value=None, reason=reason)


def fallback(parser: str, reason: str) -> str:
    """Logs a fallback taken for a reason other than parsing (e.g. the call failed)."""
    trimmed = trim(reason)
    log.warning("%s: %s; using the fallback", parser, trimmed)
    return trimmed


def trim(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_REASON_CHARS else flat[: MAX_REASON_CHARS - 1] + "…"
