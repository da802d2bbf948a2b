"""Settings from `PANTHEON_*` variables: the embedded defaults, and one-line errors naming the
variable when a value cannot be used."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infra.settings import LogFormat, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test sets counts: the developer's or CI's own PANTHEON_* are hidden."""
    for name in list(os.environ):
        if name.startswith("PANTHEON_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def settings_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    return str(raised.value)


def test_nothing_set_means_the_embedded_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings()

    assert settings.embedded is True
    assert settings.database_url is None
    assert settings.data_dir == tmp_path / "xdg" / "pantheon"
    assert settings.effective_database_url == (
        f"sqlite+aiosqlite:///{tmp_path / 'xdg' / 'pantheon' / 'pantheon.db'}"
    )
    assert settings.redis_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.log_level == "INFO"
    assert settings.catalog_file.is_file()


def test_data_dir_moves_the_embedded_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PANTHEON_DATA_DIR", str(tmp_path / "elsewhere"))

    settings = load_settings()

    assert settings.effective_database_url.endswith(f"{tmp_path / 'elsewhere' / 'pantheon.db'}")


def test_a_postgresql_url_turns_the_embedded_defaults_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql+asyncpg://pantheon@db.example:5432/pantheon"
    monkeypatch.setenv("PANTHEON_DATABASE_URL", url)

    settings = load_settings()

    assert settings.embedded is False
    assert settings.effective_database_url == url


def test_a_sqlite_file_url_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("PANTHEON_DATABASE_URL", url)

    assert load_settings().effective_database_url == url


def test_log_level_is_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANTHEON_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_log_format_and_port_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANTHEON_LOG_FORMAT", "json")
    monkeypatch.setenv("PANTHEON_PORT", "9123")

    settings = load_settings()

    assert settings.log_format is LogFormat.JSON
    assert settings.port == 9123


@pytest.mark.parametrize(
    ("name", "value", "detail"),
    [
        ("PANTHEON_PORT", "abc", "integer"),
        ("PANTHEON_PORT", "0", "greater than or equal to 1"),
        ("PANTHEON_PORT", "70000", "less than or equal to 65535"),
        ("PANTHEON_DATABASE_URL", "mysql://x", "postgresql+asyncpg://"),
        ("PANTHEON_DATABASE_URL", "postgresql://u@h/db", "postgresql+asyncpg://"),
        ("PANTHEON_DATABASE_URL", "sqlite:///x.db", "sqlite+aiosqlite:///"),
        ("PANTHEON_DATABASE_URL", "sqlite+aiosqlite:///:memory:", "in-memory"),
        ("PANTHEON_DATABASE_URL", "sqlite+aiosqlite:///:memory:/", "in-memory"),
        ("PANTHEON_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("PANTHEON_LOG_FORMAT", "xml", "text"),
        ("PANTHEON_DB_POOL_SIZE", "0", "greater than or equal to 1"),
        ("PANTHEON_MAX_REQUEST_BYTES", "lots", "integer"),
    ],
)
def test_an_unusable_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, detail: str
) -> None:
    message = settings_error(monkeypatch, name, value)

    assert message.startswith(f"{name}: ")
    assert "\n" not in message
    assert detail in message


def test_the_message_does_not_echo_the_whole_settings_dump(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pydantic's own str() lists every error with URLs over several lines; ours is one line.
    message = settings_error(monkeypatch, "PANTHEON_PORT", "abc")

    assert "errors.pydantic.dev" not in message
    assert "validation error" not in message
