"""Global ids: every ID in the API is `base64("Type:uuid")`, checked for its type on the way in."""

from __future__ import annotations

import uuid

from strawberry.relay import GlobalID, GlobalIDValueError

from domain.errors import BadUserInput, NotFound


def parse_global_id(raw: str) -> tuple[str, uuid.UUID]:
    try:
        gid = GlobalID.from_id(raw)
        value = uuid.UUID(gid.node_id)
    except (GlobalIDValueError, ValueError):
        raise BadUserInput(f"{raw!r} is not a valid id") from None
    # One spelling per object, the one the API hands out (the lower-case dashed uuid, standard
    # base64): a client may compare ids as strings, and caches keyed by id stay right. Other
    # spellings (upper-case, braced or undashed uuids, base64 with junk) name nothing.
    if global_id(gid.type_name, value) != raw:
        raise NotFound(f"no {gid.type_name} has the id {raw!r}")
    return gid.type_name, value


def uuid_of(raw: str, expected_type: str) -> uuid.UUID:
    """The uuid inside a global id, refusing an id of another type (a Turn's for a Session)."""
    type_name, value = parse_global_id(raw)
    if type_name != expected_type:
        raise BadUserInput(f"expected an id of a {expected_type}, got one of a {type_name}")
    return value


def global_id(type_name: str, value: uuid.UUID) -> str:
    return str(GlobalID(type_name, str(value)))
