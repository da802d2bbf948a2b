"""The domain's enums, exposed to GraphQL under the same names."""

from __future__ import annotations

import strawberry

from domain import enums

Role = strawberry.enum(enums.Role)
TurnMode = strawberry.enum(enums.TurnMode)
TurnStatus = strawberry.enum(enums.TurnStatus)
AgentMessageStatus = strawberry.enum(enums.AgentMessageStatus)
CallKind = strawberry.enum(enums.CallKind)
BillingCategory = strawberry.enum(enums.BillingCategory)
TokenSource = strawberry.enum(enums.TokenSource)
