"""Schemathesis fuzzes every query and mutation of a real `pantheon serve`, on PostgreSQL and on
the embedded SQLite, as an admin (so every field is reachable), with ids of real objects seeded
first: no operation may answer HTTP 5xx or INTERNAL_SERVER_ERROR.

Generated documents carry arbitrary text (NUL included), extreme numbers, dates and money
amounts. Only `revokeTokens` is left out: it could revoke the fuzzer's own token. The counts of
operations by HTTP status and error code are printed for the record (`pytest -s` shows them).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from infra.settings import Settings
from tests import db as testdb
from tests.e2e.test_two_processes import _cli
from tests.fakes.openai_server import FakeOpenAIServer
from tests.integration.test_cli import (
    TOKEN,
    Server,
    cli_env,
    running_server,
)
from tests.turns_support import write_fake_catalog

pytestmark = [pytest.mark.timeout(180)]

EXAMPLES_PER_OPERATION = 60  # 20 fields: 1,200 generated operations per database
EXCLUDED = {"revokeTokens"}  # the fuzzer's own token must survive
# Agent keys, model aliases and the provider of the fake catalog, so some strings name things.
KNOWN_STRINGS = ["qwen", "deepseek", "writer", "researcher", "qwen-plus", "deepseek-chat", "fake"]
# Codes a fuzzed operation may legitimately earn; anything else (INTERNAL_SERVER_ERROR first of
# all) is a finding. QUERY_TOO_COMPLEX comes from the query cost limit; RATE_LIMITED is not
# expected, the rate limits being raised (`_high_rate_limits`).
EXPECTED_CODES = {
    "BAD_USER_INPUT",
    "GRAPHQL_VALIDATION_FAILED",
    "GRAPHQL_PARSE_FAILED",
    "NOT_FOUND",
    "FORBIDDEN",
    "CONFLICT",
    "BUDGET_EXCEEDED",
    "QUERY_TOO_COMPLEX",
}


def _register_scalars(known_ids: list[str]) -> None:
    """Strategies wider than schemathesis' defaults. IDs: mostly real ones (so operations get
    past the id check to the code behind it), else any text. Strings: any text, or a real agent
    key, model alias or provider. Decimals: amounts beyond any budget, finer than a nano-USD,
    non-finite, not numbers at all. Times: with and without offsets, at the calendar's ends."""
    ids = st.one_of(st.sampled_from(known_ids), st.text())
    schemathesis.graphql.scalar("ID", ids.map(nodes.String))
    # long ones too, beyond every column's length (cheap to make: one repeated letter)
    long_strings = st.integers(min_value=60, max_value=40_000).map("y".__mul__)
    strings = st.one_of(st.text(), st.sampled_from(KNOWN_STRINGS), long_strings)
    schemathesis.graphql.scalar("String", strings.map(nodes.String))
    decimals = st.one_of(
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.sampled_from(["1e20", "-1e20", "1e999999999", "1e-999999999", "0.0000000001", "x"]),
        st.integers().map(str),
    )
    schemathesis.graphql.scalar("Decimal", decimals.map(nodes.String))
    offsets = st.sampled_from(["", "Z", "+14:00", "-12:00", "+00:00"])
    stamps = st.tuples(st.datetimes(), offsets).map(lambda parts: parts[0].isoformat() + parts[1])
    extremes = st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "x"])
    schemathesis.graphql.scalar("DateTime", st.one_of(stamps, extremes).map(nodes.String))


def _seed(url: str, token: str) -> list[str]:
    """Objects of every type for the fuzzer's ids: users, two sessions, a turn (its messages
    and usage rows). Returns their global ids."""

    def call(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            url,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        return body["data"]

    ids = [call("{ me { id } }")["me"]["id"]]
    created = call('mutation { createUser(input: {handle: "target"}) { user { id } } }')
    ids.append(created["createUser"]["user"]["id"])
    for title in ("first", "second"):
        session = call(f'mutation {{ createSession(input: {{title: "{title}"}}) {{ id }} }}')
        ids.append(session["createSession"]["id"])
    turn = call(
        'mutation($s: ID!) { runTurn(input: {sessionId: $s, message: "hello @qwen"}) '
        "{ id messages { id usage { id } } usage { id } } }",
        {"s": ids[-1]},
    )["runTurn"]
    ids.append(turn["id"])
    ids += [message["id"] for message in turn["messages"]]
    ids += [usage["id"] for usage in turn["usage"]]
    return ids


def _high_rate_limits() -> dict[str, str]:
    """Every per-user rate limit that exists in this build, raised far above the fuzzer's pace
    (the limits are another change's: only the settings that exist are set)."""
    raised = {}
    for name, info in Settings.model_fields.items():
        if "rate_limit" in name and info.annotation in (int, int | None):
            raised[f"PANTHEON_{name.upper()}"] = "1000000"
    return raised


@dataclass
class Tally:
    by_status: Counter[int] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def slowest(self, count: int = 4) -> dict[str, float]:
        ranked = sorted(self.seconds.items(), key=lambda item: -item[1])
        return {label: round(seconds, 1) for label, seconds in ranked[:count]}

    @property
    def operations(self) -> int:
        return sum(self.by_status.values())

    def record(self, label: str, body: str, response: requests.Response) -> None:
        self.by_status[response.status_code] += 1
        codes = _codes(response)
        self.by_code.update(codes)
        unexpected = set(codes) - EXPECTED_CODES
        if response.status_code >= 500 or unexpected:
            self.findings.append(
                f"{label} -> {response.status_code} {sorted(unexpected)}\n"
                f"  sent: {body[:500]}\n  got: {response.text[:500]}"
            )


def _report(findings: list[str], server_log: str) -> str:
    """The first findings, then each distinct exception the server logged (its traceback's last
    line), so the causes show without the server's whole log."""
    causes = Counter(
        line
        for line in server_log.splitlines()
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", line)
    )
    listed = "\n".join(f"{count:5d} x {cause}" for cause, count in causes.most_common(30))
    return (
        f"{len(findings)} findings; the first:\n" + "\n".join(findings[:8]) + f"\ncauses:\n{listed}"
    )


def _codes(response: requests.Response) -> list[str]:
    try:
        payload = response.json()
    except ValueError:
        return []
    errors = payload.get("errors") if isinstance(payload, dict) else None
    return [str((error.get("extensions") or {}).get("code")) for error in errors or []]


@pytest.fixture(
    scope="module",
    params=[pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("sqlite")],
)
async def fuzz_target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_openai_server: FakeOpenAIServer,
) -> AsyncIterator[tuple[Server, str]]:
    """A served, seeded Pantheon and an admin token: on a fresh PostgreSQL database, or on the
    embedded SQLite file in its own data dir."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    cwd = tmp / "work"
    cwd.mkdir()
    catalog = write_fake_catalog(tmp / "catalog.toml", fake_openai_server)
    env = cli_env(tmp, PANTHEON_CATALOG_FILE=str(catalog), **_high_rate_limits())
    if request.param == "sqlite":
        with _served(cwd, env, tmp / "server.log") as target:
            yield target
        return
    admin_url = testdb.pg_admin_url()
    if not admin_url:
        pytest.skip(f"{testdb.PG_URL_ENV} is not set")
    database_url = await testdb.create_pg_database(admin_url, prefix="pantheon_fuzz")
    try:
        env["PANTHEON_DATABASE_URL"] = database_url
        with _served(cwd, env, tmp / "server.log") as target:
            yield target
    finally:
        await testdb.drop_pg_database(admin_url, database_url)


@contextlib.contextmanager
def _served(cwd: Path, env: dict[str, str], log: Path) -> Iterator[tuple[Server, str]]:
    """Set up as an operator would (migrate, catalog sync, an admin), then `pantheon serve`."""
    _cli(cwd, env, "migrate")
    _cli(cwd, env, "catalog", "sync")
    found = TOKEN.search(_cli(cwd, env, "create-user", "fuzzer", "--admin"))
    assert found is not None
    with running_server(cwd, env, log) as server:
        yield server, found.group()


def test_fuzzed_operations_never_answer_an_internal_error(
    fuzz_target: tuple[Server, str], request: pytest.FixtureRequest
) -> None:
    # given
    server, token = fuzz_target
    headers = {"Authorization": f"Bearer {token}"}
    _register_scalars(_seed(f"{server.url}/graphql", token))
    schema = schemathesis.graphql.from_url(f"{server.url}/graphql", headers=headers, timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.definition.field_name not in EXCLUDED]
    # last, so that the seeded sessions serve every other operation first
    operations.sort(key=lambda op: op.definition.field_name == "deleteSession")
    tally = Tally()
    session = requests.Session()
    session.headers.update(headers)

    # when
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            response = case.call(session=session, timeout=30)
            tally.record(case.operation.label, str(case.body), response)

        started = time.monotonic()
        fuzz()
        tally.seconds[operation.label] = time.monotonic() - started

    # then
    print(
        f"\n{request.node.callspec.params['fuzz_target']}: "
        f"fuzzed {tally.operations} operations over {len(operations)} fields; "
        f"by HTTP status: {dict(sorted(tally.by_status.items()))}; "
        f"by error code: {dict(tally.by_code.most_common())}; slowest fields (s): {tally.slowest()}"
    )
    assert tally.operations >= 1_000
    assert not tally.findings, _report(tally.findings, server.log())
