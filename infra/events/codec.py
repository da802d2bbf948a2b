"""Turn events as Redis stream entries: one field, `e`, holding the event as compact JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime

from domain.turns.events import TurnEvent, TurnEventType

FIELD = "e"


def encode(event: TurnEvent) -> str:
    return json.dumps(
        {
            "t": str(event.turn_id),
            "s": str(event.session_id),
            "n": event.sequence,
            "k": event.type.value,
            "a": event.at.isoformat(),
            "p": dict(event.payload),
        },
        separators=(",", ":"),
        default=str,  # uuids, decimals, datetimes in payloads travel as their text
    )


def decode(text: str | bytes) -> TurnEvent:
    data = json.loads(text)
    payload: Mapping[str, object] = data.get("p") or {}
    return TurnEvent(
        turn_id=uuid.UUID(data["t"]),
        session_id=uuid.UUID(data["s"]),
        sequence=int(data["n"]),
        type=TurnEventType(data["k"]),
        at=datetime.fromisoformat(data["a"]),
        payload=payload,
    )
