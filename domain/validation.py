"""Input rules shared by use cases; each failure is a `BadUserInput` a frontend can show."""

from __future__ import annotations

import re
from collections.abc import Sequence

from domain.errors import BadUserInput

# The same alphabet as the @tag syntax, so every agent can be addressed by a tag.
_AGENT_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
# What no text column can hold: PostgreSQL refuses NUL in text, and a lone surrogate (JSON's
# "\ud800" decodes to one) has no UTF-8 encoding on either database.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def agent_key(key: str) -> str:
    """Trimmed and lower-cased, as handles are: `"  Critic"` names the agent `critic`."""
    normalized = key.strip()
    if not _AGENT_KEY.match(normalized):
        raise BadUserInput(f"agent key {key!r} must be 1-64 letters, digits, '_' or '-'")
    return normalized.lower()


def agent_keys(keys: Sequence[str], *, max_count: int) -> list[str]:
    if not keys:
        raise BadUserInput("agentKeys must name at least one agent")
    if len(keys) > max_count:
        raise BadUserInput(f"agentKeys may name at most {max_count} agents")
    normalized = [agent_key(key) for key in keys]
    if len(set(normalized)) != len(normalized):
        raise BadUserInput("agentKeys lists an agent twice")
    return normalized


def handle(value: str) -> str:
    normalized = value.strip().lower()
    if not _HANDLE.match(normalized):
        raise BadUserInput(
            "handle must be 2-64 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return normalized


def unstorable_character(value: str) -> str | None:
    """Names the first character of `value` that no database column can store, if any."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    code = ord(found.group())
    kind = "NUL" if code == 0 else "a lone surrogate"
    return f"{kind} (U+{code:04X})"


def storable(value: str, *, field: str) -> str:
    character = unstorable_character(value)
    if character is not None:
        raise BadUserInput(f"{field} must not contain {character}", field=field)
    return value


def text(value: str, *, field: str, max_length: int, allow_empty: bool = False) -> str:
    # The API refuses such text before executing (graph/input_guard.py); this covers the other
    # ways in (the catalog file's TOML allows "\u0000").
    stripped = storable(value, field=field).strip()
    if not stripped and not allow_empty:
        raise BadUserInput(f"{field} must not be empty")
    if len(stripped) > max_length:
        raise BadUserInput(f"{field} must be at most {max_length} characters")
    return stripped


def positive(value: int, *, field: str) -> int:
    if value <= 0:
        raise BadUserInput(f"{field} must be positive")
    return value
