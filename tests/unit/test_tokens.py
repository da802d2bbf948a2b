"""API tokens: a fixed prefix, 256 random bits, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import re

import pytest

from domain.tokens import TOKEN_PREFIX, looks_like_token, new_token, token_digest


def test_new_token_secret_has_the_prefix_and_256_bits_of_urlsafe_randomness() -> None:
    token = new_token()

    assert token.secret.startswith("pnt_")
    assert re.fullmatch(r"pnt_[A-Za-z0-9_-]{43}", token.secret)  # 32 bytes, base64url


def test_the_stored_digest_is_the_sha256_of_the_secret() -> None:
    token = new_token()

    assert token.digest == hashlib.sha256(token.secret.encode()).hexdigest()
    assert token.digest == token_digest(token.secret)
    assert token.secret not in token.digest


def test_display_prefix_identifies_the_token_without_revealing_it() -> None:
    token = new_token()

    assert token.display_prefix == token.secret[:12]
    assert token.display_prefix.startswith(TOKEN_PREFIX)


def test_every_token_is_new() -> None:
    secrets = {new_token().secret for _ in range(200)}
    assert len(secrets) == 200


def test_digest_is_deterministic_and_distinguishes_secrets() -> None:
    assert token_digest("pnt_same") == token_digest("pnt_same")
    assert token_digest("pnt_same") != token_digest("pnt_Same")


def test_a_freshly_issued_secret_looks_like_a_token() -> None:
    assert looks_like_token(new_token().secret)


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ("pnt_" + "a" * 16, True),  # 20 characters: the shortest accepted
        ("pnt_" + "a" * 15, False),
        ("pnt_" + "a" * 196, True),  # 200 characters: the longest accepted
        ("pnt_" + "a" * 197, False),
        ("xyz_" + "a" * 40, False),
        ("PNT_" + "a" * 40, False),
        ("", False),
    ],
)
def test_looks_like_token_checks_prefix_and_length(candidate: str, expected: bool) -> None:
    assert looks_like_token(candidate) is expected
