"""Users and their API tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from domain import validation
from domain.enums import Role
from domain.errors import NotFound
from domain.money import budget_to_nano
from domain.ports import ReadStore, UnitOfWork
from domain.rate_limits import RateLimiter
from domain.records import User
from domain.tokens import looks_like_token, new_token, token_digest


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedToken:
    secret: str  # the only moment the secret exists outside its owner's hands
    user: User


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateUser:
    handle: str
    role: Role = Role.USER
    monthly_budget_usd: Decimal | None = None


async def create_user(uow: UnitOfWork, command: CreateUser) -> IssuedToken:
    """Creates a user with a first token. Callers decide who may (admins, the operator's CLI)."""
    handle = validation.handle(command.handle)
    budget = _budget_nano(command.monthly_budget_usd)
    async with uow:
        user = await uow.users.add(handle=handle, role=command.role, monthly_budget_nano=budget)
        await uow.flush()  # a taken handle is a Conflict here, before the token is staged
        secret = await _stage_token(uow, user.id)
        await uow.commit()
    return IssuedToken(secret=secret, user=user)


async def issue_token(uow: UnitOfWork, actor: User, user_id: uuid.UUID) -> IssuedToken:
    async with uow:
        user = await _user_visible_to(uow, actor, user_id)
        secret = await _stage_token(uow, user.id)
        await uow.commit()
    return IssuedToken(secret=secret, user=user)


async def revoke_tokens(uow: UnitOfWork, actor: User, user_id: uuid.UUID) -> int:
    async with uow:
        user = await _user_visible_to(uow, actor, user_id)
        revoked = await uow.tokens.revoke_all(user.id, at=datetime.now(UTC))
        await uow.commit()
    return revoked


async def set_user_budget(
    uow: UnitOfWork, user_id: uuid.UUID, monthly_budget_usd: Decimal | None
) -> User:
    budget = _budget_nano(monthly_budget_usd)
    async with uow:
        if await uow.users.get(user_id) is None:
            raise NotFound("user not found")
        user = await uow.users.set_budget(user_id, budget)
        await uow.commit()
    return user


async def authenticate(reads: ReadStore, authorization: str | None) -> User | None:
    """Resolves `Bearer <token>` to its user; anything else is anonymous."""
    if not authorization:
        return None
    scheme, _, candidate = authorization.strip().partition(" ")
    candidate = candidate.strip()
    if scheme.lower() != "bearer" or not looks_like_token(candidate):
        return None
    return await reads.user_by_token_digest(token_digest(candidate))


async def authenticate_client(
    reads: ReadStore, limiter: RateLimiter, authorization: str | None, client: str
) -> User | None:
    """`authenticate`, guarded against token guessing: an address that sent too many invalid
    tokens is refused (RATE_LIMITED) before its token is read, and a token sent that resolves to
    no user counts against its address. Requests that send no token count nothing."""
    if not authorization or not authorization.strip():
        return None
    await limiter.check_authentication_allowed(client)
    user = await authenticate(reads, authorization)
    if user is None:
        await limiter.record_authentication_failure(client)
    return user


async def _user_visible_to(uow: UnitOfWork, actor: User, user_id: uuid.UUID) -> User:
    user = await uow.users.get(user_id)
    # Another user's id answers exactly like an unknown one: existence is not leaked.
    if user is None or not (actor.is_admin or actor.id == user.id):
        raise NotFound("user not found")
    return user


async def _stage_token(uow: UnitOfWork, user_id: uuid.UUID) -> str:
    token = new_token()
    await uow.tokens.add(user_id=user_id, digest=token.digest, display_prefix=token.display_prefix)
    return token.secret


def _budget_nano(amount: Decimal | None) -> int | None:
    if amount is None:
        return None
    return budget_to_nano(amount, field="monthlyBudgetUsd")
