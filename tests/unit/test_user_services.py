"""User use cases against the fake unit of work: creation, tokens, budgets, authentication."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.enums import Role
from domain.errors import BadUserInput, Conflict, NotFound
from domain.records import User
from domain.services.users import (
    CreateUser,
    authenticate,
    create_user,
    issue_token,
    revoke_tokens,
    set_user_budget,
)
from domain.tokens import new_token, token_digest
from tests.fakes.fake_uow import FakeStore, FakeUnitOfWork


class FakeReadStore:
    """Just the read the authentication needs; remembers which digests it was asked for."""

    def __init__(self, users_by_digest: dict[str, User]) -> None:
        self.users_by_digest = users_by_digest
        self.asked: list[str] = []

    async def user_by_token_digest(self, digest: str) -> User | None:
        self.asked.append(digest)
        return self.users_by_digest.get(digest)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def uow(store: FakeStore) -> FakeUnitOfWork:
    return FakeUnitOfWork(store)


async def given_user(store: FakeStore, handle: str, role: Role = Role.USER) -> User:
    issued = await create_user(FakeUnitOfWork(store), CreateUser(handle=handle, role=role))
    return issued.user


def live_tokens(store: FakeStore, user_id: uuid.UUID) -> list[str]:
    return [d for d, (owner, gone) in store.tokens.items() if owner == user_id and gone is None]


# create_user


async def test_create_user_defaults_to_a_user_without_budget_and_issues_a_token(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    # when
    issued = await create_user(uow, CreateUser(handle="alice"))

    # then
    assert issued.user.handle == "alice"
    assert issued.user.role is Role.USER
    assert issued.user.monthly_budget_nano is None
    assert issued.secret.startswith("pnt_")
    assert store.users == {issued.user.id: issued.user}
    assert store.tokens == {token_digest(issued.secret): (issued.user.id, None)}
    assert uow.commits == 1


async def test_create_user_stores_only_the_tokens_digest(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    issued = await create_user(uow, CreateUser(handle="alice"))

    assert issued.secret not in store.tokens
    assert not any(issued.secret in repr(value) for value in store.tokens.values())


async def test_create_user_normalizes_the_handle_and_keeps_the_role(uow: FakeUnitOfWork) -> None:
    issued = await create_user(uow, CreateUser(handle="  Alice.Smith ", role=Role.ADMIN))

    assert issued.user.handle == "alice.smith"
    assert issued.user.is_admin


@pytest.mark.parametrize(
    ("budget", "nano"),
    [
        (Decimal("12.5"), 12_500_000_000),
        (Decimal("0"), 0),
        (Decimal("0.000000001"), 1),
        (None, None),
    ],
)
async def test_create_user_converts_the_budget_to_nano_usd(
    uow: FakeUnitOfWork, budget: Decimal | None, nano: int | None
) -> None:
    issued = await create_user(uow, CreateUser(handle="alice", monthly_budget_usd=budget))
    assert issued.user.monthly_budget_nano == nano


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (CreateUser(handle="a"), "handle must be 2-64 characters"),
        (CreateUser(handle="has space"), "handle must be 2-64 characters"),
        (CreateUser(handle="-dash"), "handle must be 2-64 characters"),
        (CreateUser(handle="x" * 65), "handle must be 2-64 characters"),
        (CreateUser(handle="bob", monthly_budget_usd=Decimal("-1")), "must not be negative"),
        (
            CreateUser(handle="bob", monthly_budget_usd=Decimal("0.0000000001")),
            "more than 9 decimal places",
        ),
        (CreateUser(handle="bob", monthly_budget_usd=Decimal("NaN")), "finite"),
    ],
)
async def test_invalid_create_user_commits_nothing(
    uow: FakeUnitOfWork, store: FakeStore, command: CreateUser, message: str
) -> None:
    with pytest.raises(BadUserInput, match=message):
        await create_user(uow, command)
    assert uow.commits == 0
    assert store == FakeStore()


async def test_a_taken_handle_is_a_conflict_and_stages_no_token(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    # given
    await given_user(store, "alice")
    before = copy.deepcopy(store)

    # when / then
    with pytest.raises(Conflict, match="that handle is taken"):
        await create_user(uow, CreateUser(handle=" ALICE "))
    assert uow.commits == 0
    assert store == before


# issue_token / revoke_tokens: the user itself or an admin; anyone else gets NOT_FOUND


async def test_a_user_issues_a_second_token_for_itself(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    alice = await given_user(store, "alice")

    issued = await issue_token(uow, alice, alice.id)

    assert issued.user == alice
    assert token_digest(issued.secret) in live_tokens(store, alice.id)
    assert len(live_tokens(store, alice.id)) == 2
    assert uow.commits == 1


async def test_an_admin_issues_a_token_for_another_user(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    admin = await given_user(store, "root", Role.ADMIN)
    alice = await given_user(store, "alice")

    issued = await issue_token(uow, admin, alice.id)

    assert issued.user == alice
    assert token_digest(issued.secret) in live_tokens(store, alice.id)


async def test_another_user_cannot_issue_or_revoke_and_learns_nothing(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    # given
    alice = await given_user(store, "alice")
    bob = await given_user(store, "bob")
    before = copy.deepcopy(store)

    # when / then: the same answer as for an id that does not exist
    with pytest.raises(NotFound, match="user not found"):
        await issue_token(uow, bob, alice.id)
    with pytest.raises(NotFound, match="user not found"):
        await revoke_tokens(uow, bob, alice.id)
    with pytest.raises(NotFound, match="user not found"):
        await issue_token(uow, bob, uuid.uuid4())
    assert uow.commits == 0
    assert store == before


async def test_an_admin_asking_for_an_unknown_user_gets_not_found(uow: FakeUnitOfWork) -> None:
    admin = User(
        id=uuid.uuid4(),
        handle="root",
        role=Role.ADMIN,
        monthly_budget_nano=None,
        created_at=datetime.now(UTC),
    )
    with pytest.raises(NotFound):
        await issue_token(uow, admin, uuid.uuid4())
    with pytest.raises(NotFound):
        await revoke_tokens(uow, admin, uuid.uuid4())


async def test_revoking_revokes_every_live_token_of_that_user_only(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    # given
    alice = await given_user(store, "alice")
    await issue_token(FakeUnitOfWork(store), alice, alice.id)
    bob = await given_user(store, "bob")

    # when
    revoked = await revoke_tokens(uow, alice, alice.id)

    # then
    assert revoked == 2
    assert live_tokens(store, alice.id) == []
    assert len(live_tokens(store, bob.id)) == 1
    assert uow.commits == 1


async def test_revoking_again_revokes_nothing(uow: FakeUnitOfWork, store: FakeStore) -> None:
    alice = await given_user(store, "alice")
    await revoke_tokens(FakeUnitOfWork(store), alice, alice.id)

    assert await revoke_tokens(uow, alice, alice.id) == 0


async def test_an_admin_revokes_another_users_tokens(uow: FakeUnitOfWork, store: FakeStore) -> None:
    admin = await given_user(store, "root", Role.ADMIN)
    alice = await given_user(store, "alice")

    assert await revoke_tokens(uow, admin, alice.id) == 1
    assert live_tokens(store, alice.id) == []
    assert len(live_tokens(store, admin.id)) == 1


# set_user_budget


async def test_set_budget_converts_usd_and_none_removes_it(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    alice = await given_user(store, "alice")

    updated = await set_user_budget(uow, alice.id, Decimal("20.25"))
    assert updated.monthly_budget_nano == 20_250_000_000
    assert store.users[alice.id].monthly_budget_nano == 20_250_000_000

    cleared = await set_user_budget(uow, alice.id, None)
    assert cleared.monthly_budget_nano is None
    assert store.users[alice.id].monthly_budget_nano is None
    assert uow.commits == 2


async def test_set_budget_refuses_bad_amounts_and_unknown_users(
    uow: FakeUnitOfWork, store: FakeStore
) -> None:
    alice = await given_user(store, "alice")
    before = copy.deepcopy(store)

    with pytest.raises(BadUserInput, match="monthlyBudgetUsd must not be negative"):
        await set_user_budget(uow, alice.id, Decimal("-5"))
    with pytest.raises(NotFound, match="user not found"):
        await set_user_budget(uow, uuid.uuid4(), Decimal("5"))
    assert uow.commits == 0
    assert store == before


# authenticate


@pytest.fixture
def known() -> tuple[str, User, FakeReadStore]:
    token = new_token()
    user = User(
        id=uuid.uuid4(),
        handle="alice",
        role=Role.USER,
        monthly_budget_nano=None,
        created_at=datetime.now(UTC),
    )
    return token.secret, user, FakeReadStore({token.digest: user})


@pytest.mark.parametrize(
    "header", ["Bearer {secret}", "bearer {secret}", "BEARER {secret}", "  Bearer   {secret}  "]
)
async def test_a_known_bearer_token_authenticates_its_user(
    known: tuple[str, User, FakeReadStore], header: str
) -> None:
    secret, user, reads = known

    assert await authenticate(reads, header.format(secret=secret)) == user
    assert reads.asked == [token_digest(secret)]


async def test_an_unknown_token_is_anonymous(known: tuple[str, User, FakeReadStore]) -> None:
    _, _, reads = known
    other = new_token()

    assert await authenticate(reads, f"Bearer {other.secret}") is None
    assert reads.asked == [other.digest]  # looked up by digest, never by the secret


@pytest.mark.parametrize("header", [None, "", "   "])
async def test_no_header_is_anonymous_without_a_lookup(
    known: tuple[str, User, FakeReadStore], header: str | None
) -> None:
    _, _, reads = known

    assert await authenticate(reads, header) is None
    assert reads.asked == []


@pytest.mark.parametrize(
    "header",
    [
        "Basic {secret}",
        "Token {secret}",
        "{secret}",
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer pnt_short",
        "Bearer pnt_" + "a" * 300,
    ],
)
async def test_a_malformed_header_is_anonymous_without_a_lookup(
    known: tuple[str, User, FakeReadStore], header: str
) -> None:
    secret, _, reads = known

    assert await authenticate(reads, header.format(secret=secret)) is None
    assert reads.asked == []
