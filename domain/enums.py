"""The closed vocabularies of the product, shared by every layer.

Stored as strings (with CHECK constraints) and exposed as GraphQL enums under the same names.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    USER = "USER"
    ADMIN = "ADMIN"


class TurnMode(StrEnum):
    MANUAL = "MANUAL"
    ORCHESTRATOR = "ORCHESTRATOR"
    ROUNDTABLE = "ROUNDTABLE"


class TurnStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class AgentMessageStatus(StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class CallKind(StrEnum):
    AGENT_RESPONSE = "AGENT_RESPONSE"
    MANAGER_ROUTING = "MANAGER_ROUTING"
    SUMMARY_GENERATION = "SUMMARY_GENERATION"
    SUMMARY_EXTRACTION = "SUMMARY_EXTRACTION"


class BillingCategory(StrEnum):
    USER_BILLABLE = "USER_BILLABLE"
    SYSTEM_OVERHEAD = "SYSTEM_OVERHEAD"
    UNMETERED = "UNMETERED"


class TokenSource(StrEnum):
    PROVIDER = "PROVIDER"  # the provider's own usage report
    ESTIMATED = "ESTIMATED"  # our heuristic: the provider may bill, but did not say how much
    NONE = "NONE"  # the provider refused the request (429, 5xx, 4xx): nothing served, 0 tokens
