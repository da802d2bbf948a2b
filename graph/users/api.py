"""Users: `me`, the admin's `users` list, and token and budget mutations."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import strawberry
from strawberry.types.unset import UNSET

from domain.errors import BadUserInput
from domain.money import MAX_BUDGET_USD
from domain.pagination import time_id_key
from domain.records import User
from domain.services import users as service
from graph.connections import connection_parts
from graph.context import Info
from graph.enums import Role
from graph.ids import uuid_of
from graph.permissions import IsAdmin, IsAuthenticated
from graph.users.types import IssuedToken, UserConnection, UserNode


def _key(user: User) -> tuple[str, ...]:
    return time_id_key(user.created_at, user.id)


_BUDGET = f"USD per calendar month (UTC), 0 to {MAX_BUDGET_USD}, at most 9 decimal places"


@strawberry.input
class CreateUserInput:
    handle: str
    role: Role = Role.USER  # type: ignore[assignment]
    monthly_budget_usd: Decimal | None = strawberry.field(
        default=None, description=f"{_BUDGET}; null: no budget"
    )


@strawberry.type
class UserQueries:
    @strawberry.field(permission_classes=[IsAuthenticated])
    def me(self, info: Info) -> UserNode:
        return UserNode.from_record(info.context.require_viewer())

    @strawberry.field(permission_classes=[IsAdmin], description="ADMIN: every user, oldest first")
    async def users(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> UserConnection:
        request = info.context.page(first=first, after=after)
        page = await info.context.runtime.reads.users_page(request)
        edges, page_info = connection_parts(page, _key, UserNode.from_record)
        return UserConnection(edges=edges, page_info=page_info, total_count=page.total_count)


@strawberry.type
class UserMutations:
    @strawberry.mutation(permission_classes=[IsAdmin], description="ADMIN")
    async def create_user(self, info: Info, input: CreateUserInput) -> IssuedToken:
        command = service.CreateUser(
            handle=input.handle,
            role=input.role,  # type: ignore[arg-type]
            monthly_budget_usd=input.monthly_budget_usd,
        )
        issued = await service.create_user(info.context.runtime.new_uow(), command)
        return IssuedToken(token=issued.secret, user=UserNode.from_record(issued.user))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated], description="ADMIN, or the user itself"
    )
    async def issue_token(self, info: Info, user_id: strawberry.ID) -> IssuedToken:
        issued = await service.issue_token(
            info.context.runtime.new_uow(), info.context.require_viewer(), uuid_of(user_id, "User")
        )
        return IssuedToken(token=issued.secret, user=UserNode.from_record(issued.user))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="ADMIN, or the user itself; returns how many tokens were revoked",
    )
    async def revoke_tokens(self, info: Info, user_id: strawberry.ID) -> int:
        target = uuid_of(user_id, "User")
        revoked = await service.revoke_tokens(
            info.context.runtime.new_uow(), info.context.require_viewer(), target
        )
        # The user's open WebSockets were authenticated with those tokens: close them (4403),
        # here and on every other process.
        await info.context.runtime.sockets.revoke(target)
        return revoked

    @strawberry.mutation(permission_classes=[IsAdmin], description="ADMIN; null removes the budget")
    async def set_user_budget(
        self,
        info: Info,
        user_id: strawberry.ID,
        # GraphQL cannot declare a nullable argument required: omitting it is refused here,
        # so that only an explicit null removes a budget.
        monthly_budget_usd: Annotated[
            Decimal | None,
            strawberry.argument(description=f"required; {_BUDGET}; null removes the budget"),
        ] = UNSET,
    ) -> UserNode:
        if monthly_budget_usd is UNSET:
            raise BadUserInput(
                "give monthlyBudgetUsd: an amount, or null to remove the budget",
                field="monthlyBudgetUsd",
            )
        user = await service.set_user_budget(
            info.context.runtime.new_uow(), uuid_of(user_id, "User"), monthly_budget_usd
        )
        return UserNode.from_record(user)
