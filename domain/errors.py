"""The domain's error tree. Each error carries the stable code the API shows in `extensions.code`.

    PantheonError
    ├── BadUserInput        BAD_USER_INPUT
    ├── Unauthenticated     UNAUTHENTICATED
    ├── Forbidden           FORBIDDEN
    ├── NotFound            NOT_FOUND
    ├── Conflict            CONFLICT
    ├── BudgetExceeded      BUDGET_EXCEEDED
    └── RateLimited         RATE_LIMITED

The GraphQL layer maps these in one place (graph/errors.py); anything else is unexpected and masked.
"""

from __future__ import annotations


class PantheonError(Exception):
    """An expected failure whose message is safe to show to the caller."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadUserInput(PantheonError):
    """`field`, when given, names the input at fault (shown as `extensions.field`)."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Unauthenticated(PantheonError):
    code = "UNAUTHENTICATED"


class Forbidden(PantheonError):
    code = "FORBIDDEN"


class NotFound(PantheonError):
    code = "NOT_FOUND"


class Conflict(PantheonError):
    code = "CONFLICT"


class BudgetExceeded(PantheonError):
    code = "BUDGET_EXCEEDED"


class RateLimited(PantheonError):
    code = "RATE_LIMITED"
