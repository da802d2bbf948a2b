"""The domain's enums, exposed to GraphQL under the same names."""

from __future__ import annotations

import strawberry

from domain import enums

Role = strawberry.enum(enums.Role)
TurnMode = strawberry.enum(enums.TurnMode)
