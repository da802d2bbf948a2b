"""@tags and the planning of MANUAL and ROUNDTABLE turns (PRODUCT.md, "Turn modes")."""

from __future__ import annotations

import uuid

import pytest

from domain import validation
from domain.enums import TurnMode
from domain.errors import BadUserInput
from domain.turns import planning
from domain.turns.contracts import RosterAgent
from domain.turns.tags import parse_tags


def agent(key: str, *, enabled: bool = True) -> RosterAgent:
    return RosterAgent(
        id=uuid.uuid4(),
        key=key,
        name=key.title(),
        description=f"{key} agent",
        system_prompt=f"You are {key}.",
        enabled=enabled,
        model_alias=f"{key}-model",
    )


ROSTER = (agent("qwen"), agent("deepseek"), agent("writer"), agent("researcher"))
DISABLED_FIRST = (agent("qwen", enabled=False), agent("deepseek"), agent("writer"))


# --- tags -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "tags"),
    [
        ("@qwen, what is 2+2?", ["qwen"]),
        ("hello @qwen", ["qwen"]),
        ("(@qwen) and [@writer]", ["qwen", "writer"]),
        ("@qwen.", ["qwen"]),
        ("@my_agent-2 hi", ["my_agent-2"]),
        ("mail bob@qwen.com please", []),
        ("x@qwen", []),
        ("@@qwen", []),
        ("@ qwen", []),
        ("no tags at all", []),
        ("", []),
    ],
)
def test_tag_syntax(message: str, tags: list[str]) -> None:
    assert parse_tags(message) == tags


def test_tags_are_case_insensitive_and_lowercased() -> None:
    assert parse_tags("@QWEN and @Writer") == ["qwen", "writer"]


def test_tags_keep_the_order_of_first_appearance_and_appear_once() -> None:
    assert parse_tags("@writer @qwen @WRITER @qwen @deepseek @writer") == [
        "writer",
        "qwen",
        "deepseek",
    ]


# --- MANUAL ---------------------------------------------------------------------------------------


def test_manual_dispatches_every_valid_tag_in_order_of_appearance() -> None:
    decision = planning.plan_manual("@writer then @qwen, @deepseek", ROSTER, None, max_agents=8)

    assert decision.mode is TurnMode.MANUAL
    assert decision.selected_agent_keys == ("writer", "qwen", "deepseek")
    assert decision.ignored_tags == ()
    assert decision.used_fallback is False


def test_manual_dispatches_a_tag_repeated_in_other_case_once() -> None:
    decision = planning.plan_manual("@Writer @qwen @WRITER", ROSTER, None, max_agents=8)

    assert decision.selected_agent_keys == ("writer", "qwen")


def test_manual_ignores_unknown_disabled_and_off_roster_tags() -> None:
    roster = (agent("qwen"), agent("deepseek", enabled=False), agent("writer"))
    # researcher exists in the catalog but is not on this roster
    decision = planning.plan_manual(
        "@nobody @deepseek @researcher @writer", roster, None, max_agents=8
    )

    assert decision.selected_agent_keys == ("writer",)
    assert decision.ignored_tags == ("nobody", "deepseek", "researcher")


def test_manual_without_any_tag_sends_the_default_agent() -> None:
    decision = planning.plan_manual("just a question", ROSTER, None, max_agents=8)

    assert decision.selected_agent_keys == ("qwen",)
    assert decision.ignored_tags == ()


def test_manual_with_only_invalid_tags_sends_the_default_agent_and_reports_them() -> None:
    decision = planning.plan_manual("@nobody @ghost hi", ROSTER, None, max_agents=8)

    assert decision.selected_agent_keys == ("qwen",)
    assert decision.ignored_tags == ("nobody", "ghost")


def test_default_agent_is_the_first_enabled_roster_agent() -> None:
    decision = planning.plan_manual("hi", DISABLED_FIRST, None, max_agents=8)

    assert decision.selected_agent_keys == ("deepseek",)
    assert planning.default_agent(DISABLED_FIRST).key == "deepseek"


def test_a_tag_naming_the_disabled_first_agent_falls_back_to_the_first_enabled_one() -> None:
    decision = planning.plan_manual("@qwen hi", DISABLED_FIRST, None, max_agents=8)

    assert decision.selected_agent_keys == ("deepseek",)
    assert decision.ignored_tags == ("qwen",)


def test_a_roster_without_enabled_agents_is_bad_input() -> None:
    roster = (agent("qwen", enabled=False),)
    with pytest.raises(BadUserInput):
        planning.plan_manual("hi", roster, None, max_agents=8)


def test_agent_keys_decide_and_tags_are_only_reported() -> None:
    decision = planning.plan_manual(
        "@writer and @nobody", ROSTER, ["deepseek", "qwen"], max_agents=8
    )

    assert decision.selected_agent_keys == ("deepseek", "qwen")
    assert decision.ignored_tags == ("nobody",)


def test_agent_keys_are_normalised_to_lower_case() -> None:
    decision = planning.plan_manual("hi", ROSTER, ["Writer"], max_agents=8)

    assert decision.selected_agent_keys == ("writer",)


def test_agent_keys_are_trimmed_like_handles() -> None:
    decision = planning.plan_manual("hi", ROSTER, ["  Writer "], max_agents=8)

    assert decision.selected_agent_keys == ("writer",)
    assert validation.agent_keys([" qwen", "writer\t"], max_count=8) == ["qwen", "writer"]
    with pytest.raises(BadUserInput):
        validation.agent_keys(["qwen", " QWEN "], max_count=8)  # still one agent twice


@pytest.mark.parametrize(
    "keys",
    [
        pytest.param(["nobody"], id="unknown"),
        pytest.param(["deepseek"], id="disabled"),
        pytest.param(["researcher"], id="off-roster"),
        pytest.param(["qwen", "nobody"], id="one-bad-among-good"),
        pytest.param([], id="empty"),
        pytest.param(["qwen", "QWEN"], id="duplicate"),
        pytest.param(["not a key"], id="malformed"),
    ],
)
def test_bad_agent_keys_are_bad_input(keys: list[str]) -> None:
    roster = (agent("qwen"), agent("deepseek", enabled=False), agent("writer"))
    with pytest.raises(BadUserInput):
        planning.plan_manual("hi", roster, keys, max_agents=8)


def test_more_agent_keys_than_allowed_is_bad_input() -> None:
    with pytest.raises(BadUserInput):
        planning.plan_manual("hi", ROSTER, ["qwen", "deepseek", "writer"], max_agents=2)


def test_more_valid_tags_than_allowed_is_bad_input() -> None:
    with pytest.raises(BadUserInput):
        planning.plan_manual("@qwen @deepseek @writer", ROSTER, None, max_agents=2)


def test_exactly_the_allowed_number_of_tags_is_fine() -> None:
    decision = planning.plan_manual("@qwen @deepseek @nobody", ROSTER, None, max_agents=2)

    assert decision.selected_agent_keys == ("qwen", "deepseek")


# --- ROUNDTABLE -----------------------------------------------------------------------------------


def test_roundtable_sends_every_enabled_agent_in_roster_order() -> None:
    roster = (agent("writer"), agent("qwen", enabled=False), agent("researcher"), agent("deepseek"))
    decision = planning.plan_roundtable(roster, max_agents=8)

    assert decision.mode is TurnMode.ROUNDTABLE
    assert decision.selected_agent_keys == ("writer", "researcher", "deepseek")


def test_roundtable_without_enabled_agents_is_bad_input() -> None:
    with pytest.raises(BadUserInput):
        planning.plan_roundtable((agent("qwen", enabled=False),), max_agents=8)


def test_roundtable_larger_than_allowed_is_bad_input() -> None:
    with pytest.raises(BadUserInput):
        planning.plan_roundtable(ROSTER, max_agents=3)


# --- most_agents: what a reservation covers -------------------------------------------------------


def test_most_agents_of_manual_is_the_planned_count() -> None:
    count = planning.most_agents(
        TurnMode.MANUAL, "@writer @qwen @nobody", ROSTER, None, max_agents=8, manager_cap=3
    )
    assert count == 2


def test_most_agents_of_manual_with_agent_keys_counts_the_keys() -> None:
    count = planning.most_agents(
        TurnMode.MANUAL,
        "@writer",
        ROSTER,
        ["qwen", "deepseek", "writer"],
        max_agents=8,
        manager_cap=3,
    )
    assert count == 3


def test_most_agents_of_manual_without_tags_is_one() -> None:
    count = planning.most_agents(TurnMode.MANUAL, "hi", ROSTER, None, max_agents=8, manager_cap=3)
    assert count == 1


def test_most_agents_of_roundtable_is_every_enabled_agent() -> None:
    count = planning.most_agents(
        TurnMode.ROUNDTABLE, "hi", DISABLED_FIRST, None, max_agents=8, manager_cap=3
    )
    assert count == 2


@pytest.mark.parametrize(("cap", "expected"), [(3, 3), (2, 2), (10, 4)])
def test_most_agents_of_orchestrator_is_the_manager_cap_within_the_roster(
    cap: int, expected: int
) -> None:
    count = planning.most_agents(
        TurnMode.ORCHESTRATOR, "hi", ROSTER, None, max_agents=8, manager_cap=cap
    )
    assert count == expected


def test_most_agents_of_orchestrator_counts_only_enabled_agents() -> None:
    count = planning.most_agents(
        TurnMode.ORCHESTRATOR, "hi", DISABLED_FIRST, None, max_agents=8, manager_cap=5
    )
    assert count == 2
