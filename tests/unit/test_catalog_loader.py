"""The catalog file: the default one loads with exact prices; a broken one is refused in one
`CatalogError` that names the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.catalog.loader import CatalogError, load_catalog
from infra.settings import DEFAULT_CATALOG

DEFAULT_TEXT = DEFAULT_CATALOG.read_text(encoding="utf-8")

QWEN_MODEL = """[[models]]
alias = "qwen-plus"
provider = "scripted"
provider_model = "qwen-plus"
input_usd_per_million_tokens = "0.40"
"""


def write_catalog(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def broken(tmp_path: Path, old: str, new: str) -> Path:
    """The default catalog with one edit; the edit must apply (the test would be vacuous)."""
    assert old in DEFAULT_TEXT, f"the default catalog no longer contains {old!r}"
    return write_catalog(tmp_path, DEFAULT_TEXT.replace(old, new, 1))


def catalog_error(path: Path) -> str:
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    return message


def test_default_catalog_has_the_four_agents_in_order() -> None:
    spec = load_catalog(DEFAULT_CATALOG).spec

    assert [agent.key for agent in spec.agents] == ["qwen", "deepseek", "writer", "researcher"]
    assert {agent.key: agent.model_alias for agent in spec.agents} == {
        "qwen": "qwen-plus",
        "deepseek": "deepseek-chat",
        "writer": "writer-large",
        "researcher": "researcher-large",
    }
    assert all(agent.enabled for agent in spec.agents)
    assert all(agent.system_prompt.strip() for agent in spec.agents)


def test_default_catalog_prices_are_exact_nano_usd_per_million_tokens() -> None:
    spec = load_catalog(DEFAULT_CATALOG).spec

    prices = {m.alias: (m.input_nano_per_mtok, m.output_nano_per_mtok) for m in spec.models}
    assert prices == {
        "qwen-plus": (400_000_000, 1_200_000_000),
        "deepseek-chat": (270_000_000, 1_100_000_000),
        "writer-large": (2_500_000_000, 10_000_000_000),
        "researcher-large": (2_500_000_000, 10_000_000_000),
        "manager-mini": (150_000_000, 600_000_000),
        "summarizer-mini": (150_000_000, 600_000_000),
    }


def test_default_catalog_names_its_manager_and_summarizer_models_and_providers() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)

    assert catalog.spec.manager_model == "manager-mini"
    assert catalog.spec.summarizer_model == "summarizer-mini"
    assert catalog.providers == {"scripted": {"kind": "scripted"}}
    assert {m.provider for m in catalog.spec.models} == {"scripted"}
    writer = next(m for m in catalog.spec.models if m.alias == "writer-large")
    assert (writer.provider_model, writer.max_output_tokens, writer.context_window) == (
        "gpt-4o",
        4096,
        128000,
    )


def test_a_model_without_provider_model_uses_its_alias(tmp_path: Path) -> None:
    path = broken(tmp_path, 'provider_model = "qwen-plus"\n', "")

    qwen = next(m for m in load_catalog(path).spec.models if m.alias == "qwen-plus")

    assert qwen.provider_model == "qwen-plus"


def test_a_model_without_prices_is_unpriced(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace(
        'input_usd_per_million_tokens = "0.40"\noutput_usd_per_million_tokens = "1.20"\n', "", 1
    )
    assert text != DEFAULT_TEXT

    qwen = next(
        m for m in load_catalog(write_catalog(tmp_path, text)).spec.models if m.alias == "qwen-plus"
    )

    assert (qwen.input_nano_per_mtok, qwen.output_nano_per_mtok) == (None, None)


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    message = catalog_error(write_catalog(tmp_path, DEFAULT_TEXT + "\n[[models]\nalias = \n"))
    assert "not valid TOML" in message


def test_a_model_with_an_unknown_provider_is_refused(tmp_path: Path) -> None:
    path = broken(tmp_path, QWEN_MODEL, QWEN_MODEL.replace('"scripted"', '"nowhere"'))

    message = catalog_error(path)

    assert "model 'qwen-plus' uses unknown provider" in message


def test_an_agent_using_a_missing_model_is_refused(tmp_path: Path) -> None:
    path = broken(tmp_path, '\nmodel = "deepseek-chat"', '\nmodel = "deepseek-v9"')

    message = catalog_error(path)

    assert "'deepseek' uses model 'deepseek-v9', not in this file" in message


def test_a_routing_model_missing_from_the_file_is_refused(tmp_path: Path) -> None:
    path = broken(tmp_path, 'manager_model = "manager-mini"', 'manager_model = "gone"')

    assert "'routing' uses model 'gone', not in this file" in catalog_error(path)


def test_a_negative_price_is_refused(tmp_path: Path) -> None:
    path = broken(
        tmp_path,
        'input_usd_per_million_tokens = "0.40"',
        'input_usd_per_million_tokens = "-0.40"',
    )

    message = catalog_error(path)

    assert "qwen-plus must not be negative" in message


def test_a_price_finer_than_one_nano_usd_is_refused(tmp_path: Path) -> None:
    path = broken(
        tmp_path,
        'input_usd_per_million_tokens = "0.40"',
        'input_usd_per_million_tokens = "0.4000000001"',
    )

    assert "more than 9 decimal places" in catalog_error(path)


def test_an_unknown_key_in_a_model_is_refused_with_its_location(tmp_path: Path) -> None:
    path = broken(tmp_path, QWEN_MODEL, QWEN_MODEL + 'colour = "blue"\n')

    message = catalog_error(path)

    assert "models.0.colour" in message
    assert "Extra inputs are not permitted" in message


def test_an_unknown_top_level_table_is_refused(tmp_path: Path) -> None:
    message = catalog_error(write_catalog(tmp_path, DEFAULT_TEXT + "\n[surprise]\nx = 1\n"))
    assert "surprise" in message


def test_a_non_positive_token_limit_is_refused(tmp_path: Path) -> None:
    path = broken(tmp_path, "max_output_tokens = 2048", "max_output_tokens = 0")

    message = catalog_error(path)

    assert "models.0.max_output_tokens" in message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    message = catalog_error(tmp_path / "absent.toml")
    assert "No such file" in message
