"""A misspelled PANTHEON_* variable is named at start with the closest real setting."""

from __future__ import annotations

from infra.settings import Settings
from infra.unknown_settings import unknown_variable_warnings


def test_every_settings_field_and_the_documented_extras_are_known() -> None:
    environ = {f"PANTHEON_{name.upper()}": "x" for name in Settings.model_fields}
    environ |= {
        "PANTHEON_PROVIDER_LOCAL_VLLM_BASE_URL": "http://gpu:8000/v1",
        "PANTHEON_PROVIDER_QWEN_API_KEY_ENV": "MY_KEY",
        "PANTHEON_TEST_DATABASE_URL": "x",
        "PANTHEON_TEST_ANYTHING_ELSE": "x",
        "PANTHEON_REQUIRE_BROWSER": "1",
        "PANTHEON_ARTIFACTS_DIR": "/tmp/a",
        "PANTHEON_BIN": "/usr/bin/pantheon",
        "PANTHEON_AUDIT_TOKEN": "pnt_x",
        "pantheon_port": "8000",  # pydantic-settings reads names case-insensitively
        "OTHER_VARIABLE": "not ours",
    }

    assert unknown_variable_warnings(environ) == []


def test_a_misspelled_setting_is_named_with_the_closest_one() -> None:
    environ = {"PANTHEON_DATABSE_URL": "x", "PANTHEON_MAX_QUERY_DEPT": "3", "PANTHEON_XYZZY": "1"}

    assert unknown_variable_warnings(environ) == [
        "PANTHEON_DATABSE_URL is not a Pantheon setting and is ignored; "
        "did you mean PANTHEON_DATABASE_URL?",
        "PANTHEON_MAX_QUERY_DEPT is not a Pantheon setting and is ignored; "
        "did you mean PANTHEON_MAX_QUERY_DEPTH?",
        "PANTHEON_XYZZY is not a Pantheon setting and is ignored",
    ]


def test_a_setting_added_to_the_settings_class_is_known_without_a_list_to_update() -> None:
    (name,) = [name for name in Settings.model_fields if name == "db_pool_timeout_seconds"]

    assert unknown_variable_warnings({f"PANTHEON_{name.upper()}": "1"}) == []
    assert unknown_variable_warnings({"PANTHEON_DB_POOL_TIMEOUT_SECOND": "1"}) == [
        "PANTHEON_DB_POOL_TIMEOUT_SECOND is not a Pantheon setting and is ignored; "
        "did you mean PANTHEON_DB_POOL_TIMEOUT_SECONDS?"
    ]


def test_a_misspelled_provider_override_is_named_with_the_closest_field() -> None:
    environ = {"PANTHEON_PROVIDER_LOCAL_VLLM_BASEURL": "x", "PANTHEON_PROVIDER_QWEN_KEY": "y"}

    assert unknown_variable_warnings(environ) == [
        "PANTHEON_PROVIDER_LOCAL_VLLM_BASEURL is not a Pantheon setting and is ignored; "
        "did you mean PANTHEON_PROVIDER_LOCAL_VLLM_BASE_URL?",
        "PANTHEON_PROVIDER_QWEN_KEY is not a Pantheon setting and is ignored; "
        "provider overrides end in _BASE_URL or _API_KEY_ENV",
    ]
