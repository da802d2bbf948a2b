"""How a start goes wrong, as an operator sees it: a real `pantheon` process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_cli import Cli, cli_env, error_lines, free_port


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cwd = tmp_path / "work"
    cwd.mkdir()
    return Cli(tmp_path=tmp_path, cwd=cwd, env=cli_env(tmp_path))


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["migrate"]])
def test_a_start_with_the_database_down_prints_one_line_and_exits_non_zero(
    cli: Cli, command: list[str]
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://postgres:s3cret@127.0.0.1:{port}/pantheon"

    result = cli.run(*command, env={"PANTHEON_DATABASE_URL": url})

    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()  # no traceback, no log lines
    assert line.startswith(
        f"error: PANTHEON_DATABASE_URL: cannot reach postgresql+asyncpg://postgres:***@127.0.0.1:"
        f"{port}/pantheon: ConnectionRefusedError: "
    ), line
    assert error_lines(result.stderr) == [line]


def test_a_misspelled_setting_is_warned_about_at_start_naming_the_closest_one(cli: Cli) -> None:
    result = cli.run("migrate", env={"PANTHEON_MAX_QUERY_DEPT": "3"})

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].endswith(
        "PANTHEON_MAX_QUERY_DEPT is not a Pantheon setting and is ignored; "
        "did you mean PANTHEON_MAX_QUERY_DEPTH?"
    )


def test_serve_with_redis_down_prints_one_line_and_exits_non_zero(cli: Cli) -> None:
    port = free_port()

    result = cli.run(
        "serve", "--port", "0", env={"PANTHEON_REDIS_URL": f"redis://:pw@127.0.0.1:{port}/0"}
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith(
        f"error: PANTHEON_REDIS_URL: Redis at redis://127.0.0.1:{port}/0 is unreachable"
    )


def test_a_data_dir_that_cannot_be_created_is_one_line(cli: Cli) -> None:
    blocker = cli.tmp_path / "a-file"
    blocker.write_text("")

    result = cli.run("migrate", env={"PANTHEON_DATA_DIR": str(blocker / "data")})

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: PANTHEON_DATA_DIR: cannot create {blocker / 'data'}: Not a directory"
    ]
