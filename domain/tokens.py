"""API tokens: 256 random bits behind a fixed prefix, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "pnt_"
_TOKEN_BYTES = 32  # 256 bits


@dataclass(frozen=True, slots=True, kw_only=True)
class NewToken:
    secret: str  # shown to its owner once, never stored
    digest: str
    display_prefix: str


def new_token() -> NewToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
    return NewToken(secret=secret, digest=token_digest(secret), display_prefix=secret[:12])


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def looks_like_token(candidate: str) -> bool:
    return candidate.startswith(TOKEN_PREFIX) and 20 <= len(candidate) <= 200
