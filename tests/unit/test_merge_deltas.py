"""`merge_deltas`: runs of consecutive deltas of one agent merge into one, covering their
sequences; nothing else merges, nothing is lost or reordered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from domain.turns.events import TurnEvent, merge_deltas
from domain.turns.events import TurnEventType as T

TURN, OTHER, SESSION = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
AT = datetime(2026, 1, 1, tzinfo=UTC)


def delta(sequence: int, text: str, *, position: int = 1, turn: uuid.UUID = TURN) -> TurnEvent:
    payload = {"agent_key": f"agent{position}", "position": position, "text": text}
    return TurnEvent(
        turn_id=turn, session_id=SESSION, sequence=sequence, type=T.AGENT_DELTA, at=AT,
        payload=payload,
    )  # fmt: skip


def durable(sequence: int, kind: T, turn: uuid.UUID = TURN) -> TurnEvent:
    return TurnEvent(turn_id=turn, session_id=SESSION, sequence=sequence, type=kind, at=AT)


def shape(events: list[TurnEvent]) -> list[tuple[str, int, int, str]]:
    return [
        (
            e.type.value,
            int(str(e.payload.get("first_sequence", e.sequence))),
            e.sequence,
            str(e.payload.get("text", "")),
        )
        for e in events
    ]


def test_a_run_of_one_agents_deltas_becomes_one_delta_covering_their_sequences() -> None:
    merged = merge_deltas([delta(3, "Hel"), delta(4, "lo"), delta(5, ", you")])
    assert shape(merged) == [("AgentDelta", 3, 5, "Hello, you")]
    assert merged[0].payload["agent_key"] == "agent1"
    assert merged[0].payload["position"] == 1


def test_a_single_delta_is_left_as_it_is() -> None:
    alone = delta(7, "x")
    assert merge_deltas([alone]) == [alone]
    assert merge_deltas([]) == []


def test_durable_events_split_runs_and_are_never_merged() -> None:
    events = [
        durable(1, T.TURN_STARTED),
        delta(2, "a"),
        delta(3, "b"),
        durable(4, T.AGENT_FINISHED),
        durable(5, T.AGENT_STARTED),
        delta(6, "c", position=2),
        delta(7, "d", position=2),
        durable(8, T.TURN_FINISHED),
    ]
    assert shape(merge_deltas(events)) == [
        ("TurnStarted", 1, 1, ""),
        ("AgentDelta", 2, 3, "ab"),
        ("AgentFinished", 4, 4, ""),
        ("AgentStarted", 5, 5, ""),
        ("AgentDelta", 6, 7, "cd"),
        ("TurnFinished", 8, 8, ""),
    ]


def test_deltas_of_another_agent_turn_or_after_a_gap_are_not_merged() -> None:
    events = [
        delta(1, "a"),
        delta(2, "b", position=2),  # another agent
        delta(3, "c", position=2, turn=OTHER),  # another turn (a session stream)
        delta(5, "d", position=2, turn=OTHER),  # not contiguous
    ]
    assert shape(merge_deltas(events)) == [
        ("AgentDelta", 1, 1, "a"),
        ("AgentDelta", 2, 2, "b"),
        ("AgentDelta", 3, 3, "c"),
        ("AgentDelta", 5, 5, "d"),
    ]


def test_merging_merged_deltas_keeps_the_first_covered_sequence() -> None:
    once = merge_deltas([delta(1, "a"), delta(2, "b")])
    twice = merge_deltas([*once, delta(3, "c")])
    assert shape(twice) == [("AgentDelta", 1, 3, "abc")]


def test_a_merged_delta_stops_growing_at_its_size_cap() -> None:
    events = [delta(s, "x" * 4) for s in range(1, 8)]  # 7 deltas of 4 characters
    assert shape(merge_deltas(events, max_chars=10)) == [
        ("AgentDelta", 1, 2, "x" * 8),
        ("AgentDelta", 3, 4, "x" * 8),
        ("AgentDelta", 5, 6, "x" * 8),
        ("AgentDelta", 7, 7, "x" * 4),
    ]
    big = delta(9, "y" * 50)
    assert merge_deltas([big], max_chars=10) == [big]
