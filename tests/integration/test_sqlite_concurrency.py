"""The embedded SQLite under concurrent writers: a real `pantheon serve` process taking API writes
from several clients while `pantheon create-user` processes write to the same file. Every write
must succeed (writers queue on the lock taken up front; none fails with "database is locked") and
every row must be there afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_cli import PANTHEON, TOKEN, cli_env, running_server

LOCKED = "database is locked"
API_MINIMUM = 25  # writes per API stream, at least; they go on while the CLI processes run
API_MAXIMUM = 400  # a bound, in case the CLI processes hang
CLI_WRITERS = 5
CLI_TIMEOUT = 90

CREATE_SESSION = """
mutation($title: String!) { createSession(input: {title: $title}) { id title } }"""
CREATE_USER = """
mutation($handle: String!) { createUser(input: {handle: $handle}) { token user { handle } } }"""
COUNTS = "{ sessions { totalCount } users { totalCount } }"


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}
        )
        assert LOCKED not in response.text, response.text
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]


async def keep_writing(write: Callable[[int], Awaitable[None]], others_done: asyncio.Event) -> int:
    """Writes at least API_MINIMUM times, and on until the other writers have finished."""
    count = 0
    while count < API_MINIMUM or (not others_done.is_set() and count < API_MAXIMUM):
        await write(count)
        count += 1
    return count


async def cli_create_user(handle: str, cwd: Path, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        PANTHEON,
        "create-user",
        handle,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=CLI_TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = stdout.decode() + stderr.decode()
    assert LOCKED not in output, output
    assert process.returncode == 0, output
    assert TOKEN.search(stdout.decode()), output
    return handle


@pytest.mark.timeout(150)
async def test_api_and_cli_writers_share_the_embedded_database(tmp_path: Path) -> None:
    # given: a server on a fresh data dir, and its demo admin's token
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = cli_env(tmp_path)
    with running_server(cwd, env, tmp_path / "serve.log") as server:
        token = server.demo_admin_token()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
            api = Api(http)

            async def session_writer(stream: str) -> int:
                async def write(i: int) -> None:
                    data = await api(CREATE_SESSION, {"title": f"{stream}-{i}"})
                    assert data["createSession"]["title"] == f"{stream}-{i}"

                return await keep_writing(write, cli_done)

            async def user_writer() -> int:
                async def write(i: int) -> None:
                    data = await api(CREATE_USER, {"handle": f"api-user-{i}"})
                    assert TOKEN.fullmatch(data["createUser"]["token"])

                return await keep_writing(write, cli_done)

            async def cli_writers() -> list[str]:
                try:
                    return await asyncio.gather(
                        *(cli_create_user(f"cli-user-{i}", cwd, env) for i in range(CLI_WRITERS))
                    )
                finally:
                    cli_done.set()

            cli_done = asyncio.Event()

            # when: the CLI processes and three API streams write at the same time
            cli_handles, stream_a, stream_b, api_users = await asyncio.gather(
                cli_writers(), session_writer("a"), session_writer("b"), user_writer()
            )

            # then: every write is there, exactly once
            counts = await api(COUNTS)

    assert len(cli_handles) == CLI_WRITERS
    assert counts["sessions"]["totalCount"] == stream_a + stream_b
    assert counts["users"]["totalCount"] == 1 + api_users + CLI_WRITERS  # + the demo admin
    assert LOCKED not in server.log()
    assert "Traceback" not in server.log()
