"""`pantheon ledger check` and `pantheon ledger reconcile`: a ledger written by real turns (one
answered, one refused by its provider, one recovered from a dead runner) has no findings; each
kind of breakage is found, printed one per line with a non-zero exit; reconciliation with an
OpenAI usage export matches the ledger's tokens per UTC day and vendor model, and prints each
difference."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from domain.enums import TurnMode
from domain.ledger import FindingKind, check_ledger, reconcile
from domain.records import User
from domain.turns import service
from domain.turns.events import TurnEvent
from domain.turns.settings import TurnSettings
from graph.ids import uuid_of
from infra.db.engine import Database
from infra.db.ledger_reads import SqlLedgerReads
from infra.db.uow import SqlUnitOfWork
from infra.llm.usage_export import parse_usage_export
from tests import db as testdb
from tests.conftest import Actor, GraphQL
from tests.fakes.openai_script import FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_cli import CLI_TIMEOUT, PANTHEON, cli_env

CREATE = "mutation($input: CreateSessionInput!) { createSession(input: $input) { id } }"
RUN = "mutation($input: RunTurnInput!) { runTurn(input: $input) { id status } }"


async def run_turn(gql: GraphQL, actor: Actor, message: str, mode: str) -> str:
    body = await gql(CREATE, {"input": {"agentKeys": ["qwen", "deepseek"]}}, as_=actor)
    session = body["data"]["createSession"]["id"]
    variables = {"input": {"sessionId": session, "message": message, "mode": mode}}
    ran = await gql(RUN, variables, as_=actor)
    assert "errors" not in ran, ran
    return str(session)


async def abandoned_and_recovered(database: Database, gql: GraphQL, actor: Actor) -> None:
    """An ORCHESTRATOR turn whose runner died before its manager call was committed."""
    body = await gql(CREATE, {"input": {"agentKeys": ["qwen", "deepseek"]}}, as_=actor)
    session_id = uuid_of(body["data"]["createSession"]["id"], "Session")
    async with SqlUnitOfWork(database.writes) as uow:
        user = await uow.users.get(actor.uuid)
    assert isinstance(user, User)
    settings = TurnSettings(lease_seconds=0.01, manager_model="manager-mini")
    await service.start_turn(
        lambda: SqlUnitOfWork(database.writes),
        user,
        service.RunTurnRequest(session_id=session_id, message="orphan", mode=TurnMode.ORCHESTRATOR),
        settings,
        runner_id="dead",
    )
    await asyncio.sleep(0.05)

    class Quiet:
        async def publish(self, events: Any) -> None: ...

        async def last_sequence(self, turn_id: uuid.UUID) -> int:
            return 0

        async def retained(self, turn_id: uuid.UUID, *, after: int) -> list[TurnEvent]:
            return []

    recovered = await service.fail_expired_turns(
        lambda: SqlUnitOfWork(database.writes), Quiet(), settings
    )
    assert recovered


@pytest.fixture
async def ledger(
    turn_app: Any,
    turn_gql: GraphQL,
    alice: Actor,
    fake_openai: FakeOpenAIServer,
    database: Database,
) -> Database:
    """A consistent ledger: an answered ORCHESTRATOR turn, a turn refused by its provider (429s),
    and a recovered turn whose manager call was in flight. The app's sweeper is stopped: it
    would repair a turn a test leaves RUNNING past its lease."""
    await turn_app.state.runtime.supervisor.shutdown(grace_seconds=0)
    fake_openai.set_default(FakeResponse(content='{"selected_agent_keys": ["qwen"]}'),
                            model="manager-mini")  # fmt: skip
    fake_openai.set_default(FakeResponse(content="Qwen answers."), model="qwen-plus")
    fake_openai.set_default(FakeResponse(status=429), model="deepseek-chat")
    await run_turn(turn_gql, alice, "hello", "ORCHESTRATOR")
    await run_turn(turn_gql, alice, "@deepseek hi", "MANUAL")
    await abandoned_and_recovered(database, turn_gql, alice)
    return database


async def findings(database: Database) -> list[Any]:
    return await check_ledger(
        SqlLedgerReads(database.reads), now=datetime.now(UTC), lease_grace=timedelta(seconds=60)
    )


async def execute(database: Database, *statements: str) -> None:
    async with database.engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


async def test_a_ledger_written_by_turns_has_no_findings(ledger: Database) -> None:
    assert await findings(ledger) == []


async def test_a_session_with_a_summary_has_no_findings(
    turn_gql: GraphQL, alice: Actor, fake_openai: FakeOpenAIServer, database: Database
) -> None:
    # given: eight turns, the eighth making the session's summary (both calls by its model)
    fake_openai.set_default(FakeResponse(content="Ack."), model="qwen-plus")
    fake_openai.script(
        "summarizer-mini",
        FakeResponse(content=json.dumps({"summary_text": "They talked."})),
        FakeResponse(content=json.dumps({"key_points": ["talk"], "decisions": [],
                                         "action_items": [], "open_questions": []})),
    )  # fmt: skip
    body = await turn_gql(CREATE, {"input": {"agentKeys": ["qwen"]}}, as_=alice)
    session = body["data"]["createSession"]["id"]
    for n in range(8):
        variables = {"input": {"sessionId": session, "message": f"@qwen {n}", "mode": "MANUAL"}}
        assert "errors" not in await turn_gql(RUN, variables, as_=alice)
    async with database.engine.connect() as connection:
        summaries = await connection.execute(
            text("SELECT generation_used_fallback, extraction_used_fallback FROM session_summaries")
        )
        assert summaries.all() == [(False, False)]

    # then
    assert await findings(database) == []


AGENT = "call_kind = 'AGENT_RESPONSE' AND token_source = 'PROVIDER'"
BREAKAGES = {
    "agent row without its message": (
        [f"UPDATE usage_records SET agent_message_id = NULL WHERE {AGENT}"],
        {FindingKind.USAGE_WITHOUT_CONTENT, FindingKind.CONTENT_WITHOUT_USAGE},
    ),
    "manager row without the routing": (
        ["UPDATE turns SET routing = NULL WHERE status = 'COMPLETED'"],
        {FindingKind.USAGE_WITHOUT_CONTENT},
    ),
    "message without usage": (
        [f"DELETE FROM usage_records WHERE {AGENT}"],
        {FindingKind.CONTENT_WITHOUT_USAGE},
    ),
    "reservation never settled": (
        ["UPDATE turns SET reserved_nano = 1000 WHERE status = 'COMPLETED'"],
        {FindingKind.UNSETTLED_RESERVATION},
    ),
    "running past its lease": (
        [
            "UPDATE turns SET status = 'RUNNING', finished_at = NULL, "
            "lease_expires_at = '2026-01-01 00:00:00' WHERE status = 'COMPLETED'"
        ],
        {FindingKind.RUNNING_PAST_LEASE},
    ),
    "cost not its tokens at its price": (
        [f"UPDATE usage_records SET cost_nano = cost_nano + 1 WHERE {AGENT}"],
        {FindingKind.COST_MISMATCH},
    ),
    "refused row with tokens": (
        [f"UPDATE usage_records SET token_source = 'NONE' WHERE {AGENT}"],
        {FindingKind.COST_MISMATCH},
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
async def test_each_kind_of_breakage_is_found(ledger: Database, case: str) -> None:
    statements, kinds = BREAKAGES[case]
    await execute(ledger, *statements)

    found = await findings(ledger)

    assert {f.kind for f in found} == kinds, [f.line() for f in found]
    assert all(f.line().startswith(str(f.kind)) for f in found)


async def test_a_summary_made_by_its_model_without_usage_is_found(ledger: Database) -> None:
    await execute(
        ledger,
        "INSERT INTO session_summaries (id, session_id, covers_from_turn, covers_through_turn, "
        "text, structure, generation_used_fallback, extraction_used_fallback, created_at) "
        f"SELECT '{uuid.uuid4().hex}', session_id, 1, 1, 'sum', '{{}}', false, true, "
        "'2026-01-01 00:00:00' FROM turns WHERE status = 'COMPLETED'",
    )

    found = await findings(ledger)

    assert [(f.kind, "SUMMARY_GENERATION" in f.detail) for f in found] == [
        (FindingKind.CONTENT_WITHOUT_USAGE, True)
    ]


# --- reconcile ----------------------------------------------------------------------------------


async def ledger_tokens(database: Database) -> dict[str, tuple[int, int]]:
    async with database.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT provider_model, sum(prompt_tokens), sum(completion_tokens) "
                "FROM usage_records GROUP BY provider_model"
            )
        )
        return {model: (int(p), int(c)) for model, p, c in rows}


def export(day: datetime, tokens: dict[str, tuple[int, int]]) -> dict[str, Any]:
    start = int(day.timestamp())
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": start,
                "end_time": start + 86_400,
                "results": [
                    {
                        "object": "organization.usage.completions.result",
                        "input_tokens": prompt,
                        "output_tokens": completion,
                        "input_cached_tokens": 0,
                        "num_model_requests": 1,
                        "model": model,
                    }
                    for model, (prompt, completion) in tokens.items()
                ],
            }
        ],
        "has_more": False,
        "next_page": None,
    }


def today() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


async def test_reconcile_matches_an_export_with_the_same_tokens_and_prints_differences(
    ledger: Database,
) -> None:
    # given: the ledger's own tokens per vendor model, as the provider would report them
    tokens = await ledger_tokens(ledger)
    assert set(tokens) == {"manager-mini", "qwen-plus", "deepseek-chat"}
    reads = SqlLedgerReads(ledger.reads)
    same = parse_usage_export(export(today(), tokens))

    # when / then: no difference
    ours = await reads.tokens_by_day_and_model(start=same.start, end=same.end, provider=None)
    assert reconcile(ours, same.rows) == []

    # when: the provider billed 7 more input tokens of qwen-plus, and a model we never called
    prompt, completion = tokens["qwen-plus"]
    other = parse_usage_export(
        export(today(), {**tokens, "qwen-plus": (prompt + 7, completion), "gpt-x": (5, 1)})
    )
    differences = reconcile(ours, other.rows)

    # then
    assert [d.line() for d in differences] == [
        f"{today().date().isoformat()} gpt-x: input ledger 0 provider 5 (-5), "
        "output ledger 0 provider 1 (-1), requests ledger 0 provider 1",
        f"{today().date().isoformat()} qwen-plus: input ledger {prompt} provider {prompt + 7} "
        f"(-7), output ledger {completion} provider {completion} (+0), "
        "requests ledger 1 provider 1",
    ]


# --- the CLI: one finding per line, exit codes ----------------------------------------------------


def pantheon(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PANTHEON, *args],
        cwd=tmp_path,
        env=cli_env(tmp_path, PANTHEON_DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


async def test_the_cli_prints_findings_and_differences_and_exits_non_zero(
    ledger: Database, test_db: testdb.TestDatabase, tmp_path: Path
) -> None:
    # a consistent ledger, an export that matches it
    tokens = await ledger_tokens(ledger)
    matching = tmp_path / "usage.json"
    matching.write_text(json.dumps(export(today(), tokens)), encoding="utf-8")
    clean = await asyncio.to_thread(pantheon, tmp_path, test_db.url, "ledger", "check")
    agrees = await asyncio.to_thread(
        pantheon, tmp_path, test_db.url, "ledger", "reconcile", str(matching)
    )
    assert (clean.returncode, clean.stdout) == (0, ""), clean.stderr
    assert (agrees.returncode, agrees.stdout) == (0, ""), agrees.stderr

    # a broken ledger, an export that does not match it
    await execute(
        ledger,
        f"UPDATE usage_records SET cost_nano = cost_nano + 1 WHERE {AGENT}",
        "UPDATE turns SET reserved_nano = 1000 WHERE status = 'COMPLETED'",
    )
    mismatched = tmp_path / "more.json"
    mismatched.write_text(json.dumps(export(today(), {"gpt-x": (5, 1)})), encoding="utf-8")
    broken = await asyncio.to_thread(pantheon, tmp_path, test_db.url, "ledger", "check")
    disagrees = await asyncio.to_thread(
        pantheon, tmp_path, test_db.url, "ledger", "reconcile", str(mismatched)
    )
    unreadable = tmp_path / "bad.json"
    unreadable.write_text('{"object": "page", "data": []}', encoding="utf-8")
    refused = await asyncio.to_thread(
        pantheon, tmp_path, test_db.url, "ledger", "reconcile", str(unreadable)
    )

    assert broken.returncode == 1
    assert sorted(line.split(" ", 1)[0] for line in broken.stdout.splitlines()) == [
        "cost-mismatch",
        "unsettled-reservation",
    ]
    assert disagrees.returncode == 1
    ours = [model for model, counts in tokens.items() if counts != (0, 0)]
    assert len(disagrees.stdout.splitlines()) == 1 + len(ours)  # gpt-x, and each of ours
    assert (refused.returncode, refused.stdout) == (2, "")
    assert "no buckets" in refused.stderr
