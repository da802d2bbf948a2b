"""The `pantheon` command as an operator runs it: a real process, started from a fresh directory,
with the embedded default in `PANTHEON_DATA_DIR` (or a PostgreSQL URL), never the developer's own.

The server helpers here (`cli_env`, `running_server`) are shared with the SQLite concurrency test.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from graph.schema import build_schema
from infra.db import migrate
from infra.db.engine import open_database
from infra.db.models import UserRow
from tests import db as testdb

ROOT = Path(__file__).resolve().parents[2]
PANTHEON = str(Path(sys.executable).with_name("pantheon"))
TOKEN = re.compile(r"pnt_[A-Za-z0-9_-]{20,}")
HEAD = migrate.head_revisions()[0]
CATALOG_ENTRIES = 10  # the default catalog: 6 models and 4 agents
CLI_TIMEOUT = 60
START_TIMEOUT = 45


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any PANTHEON_* (no database URL), a data dir of the
    test's own, and a home/XDG dir under tmp so a stray default location shows up there."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PANTHEON_")}
    env.update(
        PANTHEON_DATA_DIR=str(tmp_path / "data"),
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "home" / "xdg"),
    )
    env.update(extra)
    return env


@dataclass
class Cli:
    tmp_path: Path
    cwd: Path
    env: dict[str, str]

    @property
    def data_dir(self) -> Path:
        return self.tmp_path / "data"

    @property
    def database_file(self) -> Path:
        return self.data_dir / "pantheon.db"

    def run(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PANTHEON, *args],
            cwd=cwd or self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.run(*args, env=env)
        assert result.returncode == 0, f"pantheon {' '.join(args)}:\n{result.stderr}"
        return result.stdout


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cwd = tmp_path / "work"
    cwd.mkdir()
    return Cli(tmp_path=tmp_path, cwd=cwd, env=cli_env(tmp_path))


@pytest.fixture
async def fresh_pg_url() -> AsyncIterator[str]:
    admin_url = testdb.pg_admin_url()
    if not admin_url:
        pytest.skip(f"{testdb.PG_URL_ENV} is not set")
    url = await testdb.create_pg_database(admin_url, prefix="pantheon_cli")
    try:
        yield url
    finally:
        await testdb.drop_pg_database(admin_url, url)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def stored_users(database_file: Path) -> dict[str, str]:
    with closing(sqlite3.connect(database_file)) as connection:
        return dict(connection.execute("SELECT handle, role FROM users"))


def stored_token_hashes(database_file: Path) -> set[str]:
    with closing(sqlite3.connect(database_file)) as connection:
        return {row[0] for row in connection.execute("SELECT token_hash FROM api_tokens")}


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# export-schema


def test_export_schema_matches_the_committed_schema_graphql(cli: Cli) -> None:
    result = subprocess.run(
        [PANTHEON, "export-schema"],
        cwd=cli.cwd,
        env=cli.env,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == (ROOT / "schema.graphql").read_bytes(), (
        "schema.graphql is stale: run `pantheon export-schema --output schema.graphql` "
        "at the repository root and commit the result"
    )


def test_export_schema_output_writes_the_file(cli: Cli) -> None:
    result = cli.run("export-schema", "--output", "exported.graphql")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    # what the code defines (the staleness of the committed file is the test above's business)
    expected = (build_schema().as_str() + "\n").encode()
    assert (cli.cwd / "exported.graphql").read_bytes() == expected


# the embedded database: one file in the data dir, whatever the current directory


def test_migrate_prints_the_head_revision_and_creates_the_data_dir_database(cli: Cli) -> None:
    stdout = cli.ok("migrate")

    assert stdout.strip() == f"database at revision {HEAD}"
    assert cli.database_file.is_file()
    assert list(cli.cwd.iterdir()) == []  # nothing written where the command ran
    assert not (cli.tmp_path / "home").exists()  # nor in the default data dir


def test_create_user_prints_a_token_and_a_taken_handle_is_one_line_error(cli: Cli) -> None:
    # when
    created = cli.ok("create-user", "alice")

    # then
    assert created.splitlines()[0] == "created user alice"
    token = created.splitlines()[1]
    assert TOKEN.fullmatch(token)
    assert stored_users(cli.database_file) == {"alice": "USER"}
    assert stored_token_hashes(cli.database_file) == {sha256(token)}

    # and when: the same handle again, from another directory
    elsewhere = cli.tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = cli.run("create-user", "alice", cwd=elsewhere)

    # then: the same database answers, in one line, without a traceback
    assert again.returncode == 1
    assert again.stdout == ""
    assert error_lines(again.stderr) == ["error: that handle is taken"]
    assert "Traceback" not in again.stderr
    assert stored_token_hashes(cli.database_file) == {sha256(token)}
    assert list(elsewhere.iterdir()) == []


def test_create_user_admin(cli: Cli) -> None:
    created = cli.ok("create-user", "bob", "--admin")

    assert created.splitlines()[0] == "created admin bob"
    assert TOKEN.fullmatch(created.splitlines()[1])
    assert stored_users(cli.database_file) == {"bob": "ADMIN"}


def report(stdout: str) -> tuple[int, int, int]:
    found = re.fullmatch(
        r"catalog synced: (\d+) inserted, (\d+) updated, (\d+) left as they are\n", stdout
    )
    assert found, stdout
    inserted, updated, unchanged = (int(n) for n in found.groups())
    return inserted, updated, unchanged


def qwen_input_price(database_file: Path) -> int:
    with closing(sqlite3.connect(database_file)) as connection:
        (price,) = connection.execute(
            "SELECT input_nano_per_mtok FROM models WHERE alias = 'qwen-plus'"
        ).fetchone()
    return int(price)


def edit_qwen_input_price(database_file: Path, price: int) -> None:
    with closing(sqlite3.connect(database_file)) as connection, connection:
        connection.execute(
            "UPDATE models SET input_nano_per_mtok = ? WHERE alias = 'qwen-plus'", (price,)
        )


def test_catalog_sync_inserts_what_is_missing_and_overwrite_makes_the_file_win(cli: Cli) -> None:
    # given: a synced database where an admin edited a price
    assert report(cli.ok("catalog", "sync")) == (CATALOG_ENTRIES, 0, 0)
    edit_qwen_input_price(cli.database_file, 1)

    # when / then: a plain sync inserts nothing and keeps the edit
    assert report(cli.ok("catalog", "sync")) == (0, 0, CATALOG_ENTRIES)
    assert qwen_input_price(cli.database_file) == 1

    # when / then: --overwrite resets every entry to the file
    assert report(cli.ok("catalog", "sync", "--overwrite")) == (0, CATALOG_ENTRIES, 0)
    assert qwen_input_price(cli.database_file) == 400_000_000


def test_an_invalid_setting_exits_2_with_one_line_naming_the_variable(cli: Cli) -> None:
    # (every variable's message is checked in tests/unit/test_settings.py)
    result = cli.run("migrate", env={"PANTHEON_PORT": "abc"})

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: PANTHEON_PORT: Input should be a valid integer, unable to parse string as an "
        "integer"
    ]
    assert not cli.data_dir.exists()  # refused before touching anything


def test_serve_with_a_broken_catalog_exits_2_before_starting(cli: Cli) -> None:
    missing = cli.tmp_path / "missing.toml"

    result = cli.run("serve", env={"PANTHEON_CATALOG_FILE": str(missing)})

    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"error: {missing}: No such file or directory"]
    assert "Traceback" not in result.stderr


# PostgreSQL


@pytest.mark.postgres
async def test_migrate_and_create_user_on_postgresql(cli: Cli, fresh_pg_url: str) -> None:
    env = {"PANTHEON_DATABASE_URL": fresh_pg_url}

    # when
    migrated = cli.ok("migrate", env=env)
    created = cli.ok("create-user", "carol", env=env)

    # then
    assert migrated.strip() == f"database at revision {HEAD}"
    assert created.splitlines()[0] == "created user carol"
    assert TOKEN.fullmatch(created.splitlines()[1])
    database = open_database(fresh_pg_url)
    try:
        async with database.reads() as session:
            assert list(await session.scalars(select(UserRow.handle))) == ["carol"]
    finally:
        await database.dispose()
    assert not cli.data_dir.exists()  # the embedded file was never used


# pantheon serve and the demo admin


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def token_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if TOKEN.search(line)]

    def demo_admin_token(self) -> str:
        lines = self.token_lines()
        assert len(lines) == 1, f"expected one demo admin line, got {lines}"
        found = TOKEN.search(lines[0])
        assert found is not None
        return found.group()


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"pantheon serve exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/api/v1/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"pantheon serve was not ready within {timeout} s:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_server(cwd: Path, env: dict[str, str], log_file: Path) -> Iterator[Server]:
    """`pantheon serve` on a free port, ready when entered, terminated (and reaped) on exit."""
    port = free_port()
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [PANTHEON, "serve", "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(process=process, url=f"http://127.0.0.1:{port}", log_file=log_file)
    try:
        _wait_ready(server, START_TIMEOUT)
        yield server
    finally:
        _stop(process)


def me(server: Server, token: str) -> dict[str, str]:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": "{ me { handle role } }"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    body = response.json()
    assert "errors" not in body, body
    result: dict[str, str] = body["data"]["me"]
    return result


@pytest.mark.timeout(120)
def test_first_start_logs_the_demo_admin_token_once_and_never_again(cli: Cli) -> None:
    # when: the first start on an empty data dir
    with running_server(cli.cwd, cli.env, cli.tmp_path / "first.log") as first:
        token = first.demo_admin_token()
        assert me(first, token) == {"handle": "admin", "role": "ADMIN"}

    # and when: a second start on the same data dir
    with running_server(cli.cwd, cli.env, cli.tmp_path / "second.log") as second:
        # then: no new secret is shown, and the first one still works
        assert second.token_lines() == []
        assert me(second, token) == {"handle": "admin", "role": "ADMIN"}

    assert first.process.returncode is not None
    assert second.process.returncode is not None
    assert stored_users(cli.database_file) == {"admin": "ADMIN"}


@pytest.mark.postgres
@pytest.mark.timeout(120)
async def test_no_demo_admin_when_a_database_url_is_set(cli: Cli, fresh_pg_url: str) -> None:
    # given: a migrated PostgreSQL database (servers do not migrate it themselves)
    database = await testdb.open_migrated(fresh_pg_url)
    try:
        # when
        env = {**cli.env, "PANTHEON_DATABASE_URL": fresh_pg_url}
        with running_server(cli.cwd, env, cli.tmp_path / "pg.log") as server:
            pass

        # then
        assert server.token_lines() == []
        async with database.reads() as session:
            assert list(await session.scalars(select(UserRow.handle))) == []
    finally:
        await database.dispose()
    assert not cli.data_dir.exists()
