"""Who answers a turn, for the modes decided without a model: MANUAL (tags) and ROUNDTABLE.

The MANUAL rules (PRODUCT.md, "Turn modes"):
- every tag naming an enabled roster agent is dispatched, in order of first appearance, once;
- tags naming nothing, a disabled agent or an agent off the roster are listed as ignored;
- with no valid tag the session's default agent (first enabled roster agent) answers;
- `agent_keys` given in the input decide instead (tags are only reported); an unknown, disabled
  or off-roster key is bad input, and so is `agent_keys` with another mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain import validation
from domain.enums import TurnMode
from domain.errors import BadUserInput
from domain.turns.contracts import RosterAgent, RoutingDecision
from domain.turns.tags import parse_tags


def enabled(roster: Sequence[RosterAgent]) -> list[RosterAgent]:
    return [agent for agent in roster if agent.enabled]


def default_agent(roster: Sequence[RosterAgent]) -> RosterAgent:
    """The first enabled agent of the roster: the deterministic fallback of every mode."""
    for agent in roster:
        if agent.enabled:
            return agent
    raise BadUserInput("no agent of this session's roster is enabled")


def plan_manual(
    message: str,
    roster: Sequence[RosterAgent],
    agent_keys: Sequence[str] | None,
    *,
    max_agents: int,
) -> RoutingDecision:
    usable = {agent.key: agent for agent in enabled(roster)}
    tags = parse_tags(message)
    if agent_keys is not None:
        keys = validation.agent_keys(agent_keys, max_count=max_agents)
        unusable = [key for key in keys if key not in usable]
        if unusable:
            raise BadUserInput(f"not an enabled agent of this session: {', '.join(unusable)}")
        ignored = tuple(tag for tag in tags if tag not in usable)
        return RoutingDecision(
            mode=TurnMode.MANUAL, selected_agent_keys=tuple(keys), ignored_tags=ignored
        )
    valid = [tag for tag in tags if tag in usable]
    ignored = tuple(tag for tag in tags if tag not in usable)
    if not valid:
        return RoutingDecision(
            mode=TurnMode.MANUAL,
            selected_agent_keys=(default_agent(roster).key,),
            ignored_tags=ignored,
        )
    if len(valid) > max_agents:
        raise BadUserInput(f"a turn may dispatch at most {max_agents} agents")
    return RoutingDecision(
        mode=TurnMode.MANUAL, selected_agent_keys=tuple(valid), ignored_tags=ignored
    )


def plan_roundtable(roster: Sequence[RosterAgent], *, max_agents: int) -> RoutingDecision:
    """Every enabled roster agent, in roster order."""
    keys = tuple(agent.key for agent in enabled(roster))
    if not keys:
        raise BadUserInput("no agent of this session's roster is enabled")
    if len(keys) > max_agents:
        raise BadUserInput(f"a turn may dispatch at most {max_agents} agents")
    return RoutingDecision(mode=TurnMode.ROUNDTABLE, selected_agent_keys=keys)


def most_agents(
    mode: TurnMode,
    message: str,
    roster: Sequence[RosterAgent],
    agent_keys: Sequence[str] | None,
    *,
    max_agents: int,
    manager_cap: int,
) -> int:
    """The most agents a turn in `mode` can dispatch: what its budget reservation covers."""
    if mode is TurnMode.MANUAL:
        return len(
            plan_manual(message, roster, agent_keys, max_agents=max_agents).selected_agent_keys
        )
    if mode is TurnMode.ROUNDTABLE:
        return len(plan_roundtable(roster, max_agents=max_agents).selected_agent_keys)
    return max(1, min(manager_cap, len(enabled(roster))))
