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

    @property
    def extensions(self) -> dict[str, object]:
        """What the API adds to `extensions` beside the code (none unless a subclass says)."""
        return {}


class BadUserInput(PantheonError):
    """`field`, when given, names the input at fault (shown as `extensions.field`)."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def extensions(self) -> dict[str, object]:
        return {"field": self.field} if self.field else {}


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
    """Names the limit (`extensions.limit`) and when to try again (`retryAfterSeconds`)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, limit: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds

    @property
    def extensions(self) -> dict[str, object]:
        return {"limit": self.limit, "retryAfterSeconds": self.retry_after_seconds}
