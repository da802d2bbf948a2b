"""The domain's input rules for text no database can store."""

from __future__ import annotations

import pytest

from domain import validation
from domain.catalog import AgentSpec
from domain.errors import BadUserInput
from domain.services.catalog import checked_agent


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("a\x00b", "NUL (U+0000)"),
        ("\ud800", "a lone surrogate (U+D800)"),
        ("x\udfff", "a lone surrogate (U+DFFF)"),
        ("fine \U0001f600 \u2028 \t\n", None),
    ],
)
def test_unstorable_characters_are_named(value: str, named: str | None) -> None:
    assert validation.unstorable_character(value) == named


def test_text_refuses_nul_naming_the_field() -> None:
    with pytest.raises(BadUserInput, match="title must not contain NUL") as raised:
        validation.text("a\x00", field="title", max_length=10)

    assert raised.value.field == "title"


def test_a_catalog_agent_with_nul_in_its_prompt_is_refused() -> None:
    # TOML's "\u0000" reaches the catalog sync without passing through the API
    spec = AgentSpec(
        key="critic",
        name="Critic",
        description="",
        system_prompt="You are\x00 Critic.",
        model_alias="m",
        enabled=True,
    )

    with pytest.raises(BadUserInput, match="systemPrompt must not contain NUL"):
        checked_agent(spec)
