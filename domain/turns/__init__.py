"""Turns: planning who answers (tags, manager routing, roundtable), building each agent's context,
metering every call, and running the plan in sequence."""
